package db

import (
	"context"
	"fmt"
)

// replaceSuffix names the new file while Replace writes it beside the old one.
const replaceSuffix = ".replace"

// Replace puts a new file, which write fills, in place of the existing database file at path,
// for tools that rewrite a database without opening it (walrec gen --force; a restore). The
// result is the same database to everyone else, as after Compact:
//
//   - it takes the database's lock first and holds it to the end, so it fails with ErrLocked
//     while a writer has the database open, and no writer can open it while it works;
//   - the new file is written beside the file path names (a symbolic link is followed, and
//     stays), as "<file>.replace", with that file's permission bits, owner and group
//     (ErrIdentity, before write is called, when this process cannot give it them);
//   - the new file is locked before it is renamed over the old one, synced before that, and the
//     directory is synced after it.
//
// An error from write, or ctx done when write returns, leaves the old file as it was and
// removes the new one. It replaces, never creates: a missing file is an error matching
// fs.ErrNotExist. Only WithFS of the options applies.
func Replace(ctx context.Context, path string, write func(ctx context.Context, f File) error, opts ...Option) (err error) {
	o := options{fs: OS}
	for _, opt := range opts {
		opt(&o)
	}
	// Opened read-only: the old file is only locked, never written.
	old, real, err := openLocked(o.fs, path, OpenReadOnly, true)
	if err != nil {
		return err
	}
	defer old.Close()
	nf, tmp, err := newReplacement(o.fs, real, replaceSuffix)
	if err != nil {
		return fmt.Errorf("db: replace %s: %w", path, err)
	}
	switched := false
	defer func() {
		if cerr := nf.Close(); err == nil && switched {
			err = cerr
		}
		if !switched {
			_ = o.fs.Remove(tmp)
		}
	}()
	if err := write(ctx, nf); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := nf.Sync(); err != nil {
		return fmt.Errorf("db: replace %s: sync %s: %w", path, tmp, err)
	}
	same, err := old.Is(real)
	if err != nil {
		return fmt.Errorf("db: replace %s: %w", path, err)
	}
	if !same {
		return newError(CodeIdentity, path, fmt.Sprintf(
			"%s was renamed, replaced or removed by another program while the new file was written; nothing was replaced", real), nil)
	}
	if err := o.fs.Rename(tmp, real); err != nil {
		return fmt.Errorf("db: replace %s: rename: %w", path, err)
	}
	switched = true
	if err := o.fs.SyncDir(dirOf(real)); err != nil {
		return fmt.Errorf("db: replace %s: the new file is in place, but the directory could not be synced (a crash may bring back the old one): %w", path, err)
	}
	return nil
}
