// Package recoveryopts lets package db see which of recovery's settings a caller's
// recovery.Option values set, without recovery exporting its options' insides: the database
// owns some of those settings (read-only, the record limit, the hook before a cut, the
// Preparer) and refuses a caller's at Open instead of overriding them.
package recoveryopts

// Owned returns the names of the options in opts (a []recovery.Option) that set a setting the
// database owns, in the order given. Package recovery sets it in its init, so it is set
// wherever package db (which imports recovery) runs.
var Owned func(opts any) []string
