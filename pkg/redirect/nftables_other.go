//go:build !linux

package redirect

import "errors"

// NFTables applies rule sets with nftables; Linux only.
type NFTables struct{}

var _ Applier = (*NFTables)(nil)

var errUnimplemented = errors.New("nftables redirect: only on Linux")

// NewNFTables fails: nftables is Linux only.
func NewNFTables() (*NFTables, error) { return nil, errUnimplemented }

// Close does nothing.
func (*NFTables) Close() error { return nil }

// Present fails: nftables is Linux only.
func (*NFTables) Present(string) (bool, error) { return false, errUnimplemented }

// Replace fails: nftables is Linux only.
func (*NFTables) Replace(Ruleset) error { return errUnimplemented }

// Delete fails: nftables is Linux only.
func (*NFTables) Delete(string) error { return errUnimplemented }
