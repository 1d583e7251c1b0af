package testdepth

import "testing"

func TestPick(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "no": false, "1": true, "true": true, " ON ": true} {
		t.Setenv(Env, v)
		if Deep() != want || Pick(1, 2) != map[bool]int{false: 1, true: 2}[want] {
			t.Errorf("%s=%q: Deep() = %v, want %v", Env, v, Deep(), want)
		}
	}
}
