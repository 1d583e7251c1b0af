package tests

// The public packages' promise: a user who reads `go doc` of any of them understands every
// exported name without reading this module's internals. Here that is checked of the types:
// no exported name leads to a type defined in an internal package.

import (
	"go/importer"
	"go/token"
	"go/types"
	"strings"
	"testing"
)

// The packages a user imports.
var publicPackages = []string{
	"github.com/streamwal/recovery",
	"github.com/streamwal/recovery/pipeline",
	"github.com/streamwal/recovery/source",
	"github.com/streamwal/recovery/verify",
	"github.com/streamwal/recovery/apply",
	"github.com/streamwal/recovery/bufpool",
	"github.com/streamwal/recovery/classify",
	"github.com/streamwal/recovery/format",
	"github.com/streamwal/recovery/walerr",
	"github.com/streamwal/recovery/db",
}

// Exported aliases of internal types, each documented in full where it is declared (its
// fields and methods in the alias's own comment), so the user never needs the internal page.
var documentedAliases = map[string]bool{
	"github.com/streamwal/recovery.Panic": true, // internal/panics.Recovered: Value, Stack, Error
}

func TestAPINamesNoInternalType(t *testing.T) {
	imp := importer.ForCompiler(token.NewFileSet(), "source", nil)
	for _, path := range publicPackages {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, name := range pkg.Scope().Names() {
			obj := pkg.Scope().Lookup(name)
			if !obj.Exported() {
				continue
			}
			where := path + "." + name
			if tn, ok := obj.(*types.TypeName); ok && tn.IsAlias() && documentedAliases[where] {
				continue
			}
			w := apiWalker{t: t, seen: map[types.Type]bool{}}
			w.obj(where, obj)
		}
	}
}

type apiWalker struct {
	t    *testing.T
	seen map[types.Type]bool
}

func (w *apiWalker) obj(where string, obj types.Object) {
	switch o := obj.(type) {
	case *types.TypeName:
		if o.IsAlias() {
			w.typ(where, o.Type())
			return
		}
		named, ok := o.Type().(*types.Named)
		if !ok {
			w.typ(where, o.Type())
			return
		}
		w.typ(where, named.Underlying())
		for _, t := range []types.Type{named, types.NewPointer(named)} {
			ms := types.NewMethodSet(t)
			for i := range ms.Len() {
				if m := ms.At(i).Obj(); m.Exported() {
					w.typ(where+"."+m.Name(), m.Type())
				}
			}
		}
	default:
		w.typ(where, obj.Type())
	}
}

func (w *apiWalker) typ(where string, t types.Type) {
	if t == nil || w.seen[t] {
		return
	}
	w.seen[t] = true
	if a, ok := t.(*types.Alias); ok {
		w.named(where, a.Obj())
		w.typ(where, types.Unalias(a))
		return
	}
	switch t := t.(type) {
	case *types.Named:
		w.named(where, t.Obj())
		for i := range t.TypeArgs().Len() {
			w.typ(where, t.TypeArgs().At(i))
		}
	case *types.Pointer:
		w.typ(where, t.Elem())
	case *types.Slice:
		w.typ(where, t.Elem())
	case *types.Array:
		w.typ(where, t.Elem())
	case *types.Chan:
		w.typ(where, t.Elem())
	case *types.Map:
		w.typ(where, t.Key())
		w.typ(where, t.Elem())
	case *types.Signature:
		for _, tup := range []*types.Tuple{t.Params(), t.Results()} {
			for i := range tup.Len() {
				w.typ(where, tup.At(i).Type())
			}
		}
	case *types.Struct:
		for i := range t.NumFields() {
			if f := t.Field(i); f.Exported() {
				w.typ(where+"."+f.Name(), f.Type())
			}
		}
	case *types.Interface:
		for i := range t.NumMethods() {
			if m := t.Method(i); m.Exported() {
				w.typ(where+"."+m.Name(), m.Type())
			}
		}
	}
}

func (w *apiWalker) named(where string, tn *types.TypeName) {
	if tn.Pkg() != nil && strings.Contains(tn.Pkg().Path()+"/", "/internal/") {
		w.t.Errorf("%s names %s.%s, a type of an internal package", where, tn.Pkg().Path(), tn.Name())
	}
}
