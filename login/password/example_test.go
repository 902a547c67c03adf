package password_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/authflow/authflow/login/password"
)

func ExampleArgon2id() {
	ctx := context.Background()
	// Parameters this small are for the example only; use the defaults.
	h := password.Argon2id{Memory: 1024, Iterations: 1, Parallelism: 1}

	encoded, err := h.Hash(ctx, []byte("correct horse"))
	if err != nil {
		panic(err)
	}
	fmt.Println(h.Compare(ctx, []byte("correct horse"), encoded))
	fmt.Println(errors.Is(h.Compare(ctx, []byte("wrong"), encoded), password.ErrMismatch))
	// Output:
	// <nil>
	// true
}

func ExampleCompare() {
	ctx := context.Background()
	// A hash imported from an LDAP directory.
	const imported = "{SSHA}lSZLZselQwhKaqWnmlsYUFi9bd0BAnNhbHRieXRlcw=="

	if err := password.Compare(ctx, []byte("correct horse"), imported); err != nil {
		fmt.Println("invalid credentials")
		return
	}
	fmt.Println("ok; needs rehash:", password.Argon2id{}.NeedsRehash(imported))
	// Output: ok; needs rehash: true
}
