package status

import (
	"net/http"
	"testing"
)

func TestEvictFirst(t *testing.T) {
	newOld := connInfo{http.StateNew, 1}
	idleOld := connInfo{http.StateIdle, 2}
	newYoung := connInfo{http.StateNew, 9}
	busyOld := connInfo{http.StateActive, 3}
	busyYoung := connInfo{http.StateActive, 8}
	tests := []struct {
		name string
		a, b connInfo
		want bool
	}{
		{"older waiting before younger waiting", newOld, newYoung, true},
		{"younger waiting after older waiting", newYoung, newOld, false},
		{"idle and new count alike: older first", newOld, idleOld, true},
		{"waiting before busy, even when younger", newYoung, busyOld, true},
		{"busy after waiting", busyOld, newYoung, false},
		{"longest running busy first", busyOld, busyYoung, true},
		{"not before itself", idleOld, idleOld, false},
	}
	for _, tt := range tests {
		if got := evictFirst(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: evictFirst(%v, %v) = %v, want %v", tt.name, tt.a, tt.b, got, tt.want)
		}
	}
}
