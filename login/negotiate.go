package login

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// This file is the one place that decides whether a request gets JSON or a
// redirect (CONTRACT Part 1 rule 1). Each predicate is used from exactly one
// place: isJSONRequest by the exchange of every endpoint that answers
// browsers both ways, acceptsJSON by browser flow creation.

// isJSONRequest reports whether r is a JSON request: its Accept header
// negotiates to application/json over the offers text/html, text/*, */*,
// application/json (default text/html), or its Content-Type's media type is
// application/json (parameters such as charset allowed).
func isJSONRequest(r *http.Request) bool {
	if negotiate(r.Header.Values("Accept"), jsonRequestOffers) == "application/json" {
		return true
	}
	return mediaType(r.Header.Get("Content-Type")) == "application/json"
}

// mediaType returns the media type of a Content-Type header in lower case,
// or "" when it does not parse (mime.ParseMediaType); without allocating
// for the types clients send without parameters.
func mediaType(ct string) string {
	for _, common := range [...]string{"application/json", "application/x-www-form-urlencoded"} {
		if strings.EqualFold(ct, common) {
			return common
		}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

var jsonRequestOffers = []string{"text/html", "text/*", "*/*", "application/json"}

// acceptsJSON reports whether r's Accept header negotiates to
// application/json over the offers text/html, application/json (default
// text/html). Content-Type is ignored. Browser flow creation uses it.
func acceptsJSON(r *http.Request) bool {
	return negotiate(r.Header.Values("Accept"), acceptOffers) == "application/json"
}

var acceptOffers = []string{"text/html", "application/json"}

// negotiate picks the best of offers for the Accept header values, the
// first offer being the default. For each offer in order it considers every
// media range with q > 0; a range replaces the current best if its q is
// higher, or its q is equal and it is more specific (exact beats type/*
// beats */*). Ties keep the earlier offer. This is the algorithm Kratos'
// clients are used to (golang/gddo's NegotiateContentType).
func negotiate(accept []string, offers []string) string {
	best := offers[0]
	bestQ := -1.0
	bestWild := 3
	specs := parseAccept(accept)
	for _, offer := range offers {
		for _, s := range specs {
			switch {
			case s.q == 0 || s.q < bestQ:
				continue
			case s.value == "*/*":
				if s.q > bestQ || bestWild > 2 {
					best, bestQ, bestWild = offer, s.q, 2
				}
			case strings.HasSuffix(s.value, "/*"):
				if strings.HasPrefix(offer, s.value[:len(s.value)-1]) && (s.q > bestQ || bestWild > 1) {
					best, bestQ, bestWild = offer, s.q, 1
				}
			default:
				if s.value == offer && (s.q > bestQ || bestWild > 0) {
					best, bestQ, bestWild = offer, s.q, 0
				}
			}
		}
	}
	return best
}

type acceptSpec struct {
	value string
	q     float64
}

// parseAccept parses Accept header values into media ranges with their
// quality. Malformed ranges are skipped; a malformed q counts as 0.
func parseAccept(values []string) []acceptSpec {
	var specs []acceptSpec
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			params := strings.Split(part, ";")
			value := strings.ToLower(strings.TrimSpace(params[0]))
			if !strings.Contains(value, "/") {
				continue
			}
			spec := acceptSpec{value: value, q: 1}
			for _, p := range params[1:] {
				k, val, _ := strings.Cut(p, "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || q < 0 || q > 1 {
						q = 0
					}
					spec.q = q
				}
			}
			specs = append(specs, spec)
		}
	}
	return specs
}
