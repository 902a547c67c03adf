package password

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

const (
	// bcryptDefaultCost is the cost used by a zero Bcrypt.
	bcryptDefaultCost = 12
	// bcryptMaxCost bounds the cost of stored hashes and of Bcrypt.Hash.
	bcryptMaxCost = 15
	// bcryptMaxPassword is the number of password bytes bcrypt uses.
	bcryptMaxPassword = 72
)

// Bcrypt is a [Hasher] that makes bcrypt hashes ($2a$). A zero Cost means
// 12; Hash returns [ErrParameters] for a cost outside [4, 15].
//
// bcrypt uses only the first 72 bytes of a password. Hash refuses longer
// passwords with [ErrTooLong], and [Compare] never matches them.
type Bcrypt struct {
	Cost int
}

var _ Hasher = Bcrypt{}

// cost returns b's cost, with the default applied.
func (b Bcrypt) cost() int {
	if b.Cost == 0 {
		return bcryptDefaultCost
	}
	return b.Cost
}

// Hash returns the bcrypt hash of password with a fresh random salt.
func (b Bcrypt) Hash(ctx context.Context, password []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if len(password) > bcryptMaxPassword {
		return "", ErrTooLong
	}
	cost := b.cost()
	if cost < bcrypt.MinCost || cost > bcryptMaxCost {
		return "", fmt.Errorf("%w: bcrypt: cost %d not in [%d, %d]", ErrParameters, cost, bcrypt.MinCost, bcryptMaxCost)
	}
	h, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return "", fmt.Errorf("password: bcrypt: %w", err)
	}
	return string(h), nil
}

// Compare verifies password against an encoded hash of any format supported
// by the package-level [Compare].
func (Bcrypt) Compare(ctx context.Context, password []byte, encoded string) error {
	return Compare(ctx, password, encoded)
}

// NeedsRehash reports whether encoded is anything but a bcrypt hash whose
// cost is at least b's.
func (b Bcrypt) NeedsRehash(encoded string) bool {
	if !isBcrypt(encoded) {
		return true
	}
	cost, err := bcrypt.Cost([]byte(encoded))
	return err != nil || cost < b.cost()
}

// isBcrypt reports whether encoded starts like a bcrypt hash: $2$, $2a$,
// $2b$, $2y$ or $2z$.
func isBcrypt(encoded string) bool {
	if len(encoded) < 3 || encoded[:2] != "$2" {
		return false
	}
	switch encoded[2] {
	case '$':
		return true
	case 'a', 'b', 'y', 'z':
		return len(encoded) > 3 && encoded[3] == '$'
	}
	return false
}

// compareBcrypt verifies a bcrypt hash.
func compareBcrypt(password []byte, encoded string) error {
	cost, err := bcrypt.Cost([]byte(encoded))
	if err != nil {
		if _, ok := errors.AsType[bcrypt.InvalidCostError](err); ok {
			return fmt.Errorf("%w: bcrypt: %v", ErrParameters, err)
		}
		return malformed("bcrypt", err.Error())
	}
	if err := checkRange("bcrypt", "cost", uint64(cost), uint64(bcrypt.MinCost), bcryptMaxCost); err != nil {
		return err
	}
	if len(password) > bcryptMaxPassword {
		return ErrMismatch
	}
	switch err := bcrypt.CompareHashAndPassword([]byte(encoded), password); {
	case err == nil:
		return nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return ErrMismatch
	default:
		return malformed("bcrypt", err.Error())
	}
}
