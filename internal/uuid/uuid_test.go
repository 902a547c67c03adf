package uuid

import "testing"

func TestNewIsVersion4AndParses(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := New()
		if id[14] != '4' || (id[19] != '8' && id[19] != '9' && id[19] != 'a' && id[19] != 'b') {
			t.Fatalf("%s is not a version 4 RFC 9562 UUID", id)
		}
		if got, ok := Parse(id); !ok || got != id {
			t.Fatalf("Parse(%q) = %q, %v", id, got, ok)
		}
		if seen[id] {
			t.Fatalf("duplicate %s", id)
		}
		seen[id] = true
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"A9074070-0C41-4066-B938-E77AC72181E4", "a9074070-0c41-4066-b938-e77ac72181e4", true},
		{"a9074070-0c41-4066-b938-e77ac72181e4", "a9074070-0c41-4066-b938-e77ac72181e4", true},
		{"", "", false},
		{"not-a-uuid", "", false},
		{"a9074070x0c41-4066-b938-e77ac72181e4", "", false},
		{"g9074070-0c41-4066-b938-e77ac72181e4", "", false},
		{"a9074070-0c41-4066-b938-e77ac72181e45", "", false},
	} {
		got, ok := Parse(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
