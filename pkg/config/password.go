package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/hapod/hapod/internal/inputfile"
)

// maxPasswordFile bounds the password file's size: 8 bytes and a line
// ending, with room for a CRLF and a mistake worth reporting by length.
const maxPasswordFile = 4 << 10

// ReadPassword reads the VRRPv2 simple password from path: the file's
// content without a trailing newline, 1-8 bytes (the packet carries 8).
// The file must be a regular file (see inputfile.Read). Errors name the
// flag and the file.
func ReadPassword(ctx context.Context, path string) (string, error) {
	data, err := inputfile.Read(ctx, path, maxPasswordFile)
	if err != nil {
		var pe *fs.PathError
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
