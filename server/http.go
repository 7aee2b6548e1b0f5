package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// maxBody bounds request bodies: a Compose stack is kilobytes.
const maxBody = 8 << 20

// maxHeader bounds request headers.
const maxHeader = 64 << 10

// handlerFunc returns a value to encode as JSON, or an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// wrap is the one place that turns handler results into responses and
// error kinds into HTTP statuses.
func (s *Server) wrap(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panic", "path", r.URL.Path, "panic", p)
				writeError(w, fmt.Errorf("internal error: %v", p))
			}
		}()
		v, err := h(w, r)
		if err != nil {
			writeError(w, err)
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// statusFor maps error kinds to HTTP statuses.
func statusFor(err error) (int, string) {
	switch {
	case errors.Is(err, api.ErrInvalid):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, api.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, api.ErrConflict), errors.Is(err, store.ErrChanged):
		return http.StatusConflict, "conflict"
	case errors.Is(err, api.ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated"
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, "forbidden"
	default:
		return http.StatusInternalServerError, "internal"
	}
}

func writeError(w http.ResponseWriter, err error) {
	status, kind := statusFor(err)
	if rec, ok := w.(*recorder); ok {
		rec.errMsg = err.Error()
	}
	writeJSON(w, status, api.ErrorBody{Error: err.Error(), Kind: kind})
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors, and the size is bounded.
func decode(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.Invalidf("request body larger than %d bytes", maxBody)
		}
		if errors.Is(err, io.EOF) {
			return api.Invalidf("request body is empty; send a JSON object")
		}
		return api.Invalidf("request body: %v", err)
	}
	if dec.More() {
		return api.Invalidf("request body has data after the JSON object")
	}
	return nil
}

// pathName reads and validates a name from the URL path.
func pathName(r *http.Request, key, what string) (string, error) {
	v := r.PathValue(key)
	if strings.ContainsAny(v, "/\\") || strings.Contains(v, "..") {
		return "", api.Invalidf("%s %q must not contain path separators or '..'", what, v)
	}
	if err := api.ValidateName(what, v); err != nil {
		return "", err
	}
	return v, nil
}
