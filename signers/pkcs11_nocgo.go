//go:build !cgo

package signers

import (
	"context"

	"github.com/chamber-court/chamber/fault"
)

// with fails: PKCS#11 modules are shared libraries, loaded through cgo.
func (ts *tokens) with(context.Context, Token, string, func(tokenKey) error) error {
	return fault.New(fault.Conflict, "this build of Chamber has no PKCS#11 support (built without cgo)")
}
