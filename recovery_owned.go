package recovery

import "github.com/streamwal/recovery/internal/recoveryopts"

// The database sees through this which of its own settings a caller's options set.
func init() {
	recoveryopts.Owned = func(v any) []string {
		var names []string
		for _, opt := range v.([]Option) {
			var o options
			opt(&o)
			switch {
			case o.readOnly:
				names = append(names, "recovery.ReadOnly()")
			case o.maxRecord != 0:
				names = append(names, "recovery.WithMaxRecordSize")
			case o.beforeTruncate != nil:
				names = append(names, "recovery.WithBeforeTruncate")
			case o.prepare != nil:
				names = append(names, "recovery.WithPrepare")
			}
		}
		return names
	}
}
