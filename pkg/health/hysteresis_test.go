package health

import "testing"

func TestHysteresis(t *testing.T) {
	type step struct {
		ok      bool
		changed bool
		healthy bool
	}
	// s is a compact step: result, want changed, want healthy.
	s := func(ok, changed, healthy bool) step { return step{ok, changed, healthy} }
	const T, F = true, false
	tests := []struct {
		name       string
		rise, fall int
		steps      []step
	}{
		{"first success is up at once", 2, 3, []step{s(T, T, T), s(T, F, T)}},
		{"first failure is down at once", 2, 3, []step{s(F, T, F), s(F, F, F)}},
		{"fall failures in a row go down", 2, 3, []step{
			s(T, T, T), s(F, F, T), s(F, F, T), s(F, T, F), s(F, F, F),
		}},
		{"a success resets the fall count", 2, 3, []step{
			s(T, T, T), s(F, F, T), s(F, F, T), s(T, F, T), s(F, F, T), s(F, F, T), s(F, T, F),
		}},
		{"rise successes in a row go up", 2, 3, []step{
			s(F, T, F), s(T, F, F), s(T, T, T),
		}},
		{"a failure resets the rise count", 3, 3, []step{
			s(F, T, F), s(T, F, F), s(T, F, F), s(F, F, F), s(T, F, F), s(T, F, F), s(T, T, T),
		}},
		{"rise and fall 1 follow every result", 1, 1, []step{
			s(T, T, T), s(F, T, F), s(T, T, T), s(T, F, T), s(F, T, F),
		}},
		{"zero rise and fall act as 1", 0, 0, []step{
			s(F, T, F), s(T, T, T), s(F, T, F),
		}},
		{"flapping never rises with rise 2", 2, 3, []step{
			s(F, T, F), s(T, F, F), s(F, F, F), s(T, F, F), s(F, F, F),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Hysteresis{Rise: tt.rise, Fall: tt.fall}
			if _, known := h.Healthy(); known {
				t.Fatal("zero Hysteresis reports a known state")
			}
			for i, st := range tt.steps {
				changed, healthy := h.Record(st.ok)
				if changed != st.changed || healthy != st.healthy {
					t.Fatalf("step %d Record(%v) = (changed %v, healthy %v), want (%v, %v)",
						i, st.ok, changed, healthy, st.changed, st.healthy)
				}
				if got, known := h.Healthy(); !known || got != healthy {
					t.Fatalf("step %d Healthy() = (%v, %v), want (%v, true)", i, got, known, healthy)
				}
			}
		})
	}
}
