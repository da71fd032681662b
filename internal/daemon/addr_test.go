package daemon

import (
	"testing"

	"github.com/hapod/hapod/pkg/vrrp"
)

func TestAuthType(t *testing.T) {
	if authType("") != vrrp.AuthNone || authType("pw") != vrrp.AuthSimple {
		t.Error("auth type does not follow the password")
	}
}
