package uuid

import (
	"regexp"
	"strings"
	"testing"
)

// canonical is the reference for Parse: the 8-4-4-4-12 hexadecimal form,
// either case; lowerCanonical is Parse's output form.
var (
	canonical      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	lowerCanonical = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// FuzzUUIDParse: Parse never panics and agrees with the regular
// expression; what it accepts comes back as the lower-cased input, 36
// characters of canonical lower-case form, which Parse accepts unchanged.
func FuzzUUIDParse(f *testing.F) {
	for _, s := range []string{
		"", New(), strings.ToUpper(New()), "00000000-0000-0000-0000-000000000000",
		"ffffffff-ffff-ffff-ffff-ffffffffffff", "FfFfFfFf-fFfF-4aAa-BbBb-0123456789aB",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8", "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
		"6ba7b8109dad11d180b400c04fd430c8", "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c", "6ba7b810-9dad-11d1-80b4-00c04fd430c8 ",
		"6ba7b810_9dad-11d1-80b4-00c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430cg",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c\x00", "6ba7b810-9dad-11d1-80b4-00c04fd43\u00e9",
		"6ba7b810-9dad-11d1-80b4-00c04fd43０", "------------------------------------",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8-6ba7b810",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, ok := Parse(s)
		if ok != canonical.MatchString(s) {
			t.Fatalf("Parse(%q) = %v, the reference says %v", s, ok, !ok)
		}
		if !ok {
			if out != "" {
				t.Fatalf("Parse(%q) refused but returned %q", s, out)
			}
			return
		}
		if len(out) != 36 || !lowerCanonical.MatchString(out) || out != strings.ToLower(s) {
			t.Fatalf("Parse(%q) = %q, not the canonical lower-case form", s, out)
		}
		if again, ok := Parse(out); !ok || again != out {
			t.Fatalf("Parse(%q) = %q, %v; want it unchanged", out, again, ok)
		}
	})
}
