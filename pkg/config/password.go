package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ReadPassword reads the VRRPv2 simple password from path: the file's
// content without a trailing newline, 1-8 bytes (the packet carries 8).
// Errors name the flag and the file.
func ReadPassword(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", &FieldError{Flag: "auth-pass-file", Value: path, Err: err}
	}
	pass := strings.TrimRight(string(data), "\r\n")
	if pass == "" || len(pass) > 8 {
		return "", &FieldError{Flag: "auth-pass-file", Value: path, Err: fmt.Errorf("the password must be 1-8 bytes (VRRPv2 carries 8), found %d", len(pass))}
	}
	return pass, nil
}
