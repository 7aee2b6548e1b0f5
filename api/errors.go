package api

import (
	"errors"
	"fmt"
)

// Error kinds. One place (server.statusFor and the CLI's exit code) maps them
// to HTTP statuses and exit codes; everything else wraps them with %w.
var (
	ErrInvalid     = errors.New("invalid")
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("unavailable")
)

// Invalidf returns an error of kind ErrInvalid.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// NotFoundf returns an error of kind ErrNotFound.
func NotFoundf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotFound, fmt.Sprintf(format, args...))
}

// Conflictf returns an error of kind ErrConflict.
func Conflictf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}

// ErrorBody is the JSON body of every non-2xx API response.
type ErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind"` // invalid, not_found, conflict, unavailable, internal
}
