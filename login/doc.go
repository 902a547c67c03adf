// Package login serves the self-service login flow as an http.Handler.
package login
