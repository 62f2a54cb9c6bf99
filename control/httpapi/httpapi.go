// Package httpapi is what the control plane's API packages share at the
// HTTP boundary: JSON answers, JSON errors ({"error","status","code"}),
// strict request decoding, and a handler adapter that maps errors to
// statuses and logs causes without sending them.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Error is an error answer: Msg goes to the client, Err only to logs.
type Error struct {
	Status int
	Code   string
	Msg    string
	Err    error
	// Quiet marks an expected refusal (bad credentials, no grant), not worth a log.
	Quiet bool
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Common errors.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: fmt.Sprintf(format, args...), Quiet: true}
}

// NotFound is the answer for a missing resource, and for another
// organization's (no existence oracle).
func NotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "NOT_FOUND", Msg: what + " not found", Quiet: true}
}

// Unauthorized is the answer for a missing or invalid credential.
func Unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Msg: msg, Quiet: true}
}

// Forbidden is the answer for a caller whose role or grants do not allow the request.
func Forbidden(msg string) *Error {
	return &Error{Status: http.StatusForbidden, Code: "FORBIDDEN", Msg: msg, Quiet: true}
}

// Conflict is the answer for a request that clashes with the current state.
func Conflict(msg string) *Error {
	return &Error{Status: http.StatusConflict, Code: "CONFLICT", Msg: msg, Quiet: true}
}

// WriteJSON answers v as JSON with status; not stored by caches unless
// the handler set its own Cache-Control.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteError answers e as JSON, never stored by caches, whatever the
// handler set before failing.
func WriteError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Del("Surrogate-Key")
	w.Header().Del("ETag")
	WriteJSON(w, e.Status, map[string]any{"error": e.Msg, "status": e.Status, "code": e.Code})
}

// MaxBody is the default bound of a JSON request body.
const MaxBody = 1 << 20

// Decode reads one JSON value from r's body into v: unknown fields,
// trailing data, bodies over max bytes (MaxBody when 0) and non-JSON
// content types are refused with a 400 (413 for size).
func Decode(w http.ResponseWriter, r *http.Request, v any, max int64) error {
	if max <= 0 {
		max = MaxBody
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "UNSUPPORTED_MEDIA_TYPE", Msg: "the body must be JSON (Content-Type: application/json)", Quiet: true}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: "TOO_LARGE", Msg: fmt.Sprintf("the body is over %d bytes", max), Quiet: true}
		case errors.Is(err, io.EOF):
			return BadRequest("the body is empty; a JSON object is expected")
		case errors.As(err, &se):
			return BadRequest("malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			return BadRequest("field %q: expected %s", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return BadRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return BadRequest("malformed JSON: %v", err)
		}
	}
	if dec.More() {
		return BadRequest("trailing data after the JSON value")
	}
	return nil
}

// Handler adapts a handler returning an error: *Error values are answered
// with their status (5xx logged with their cause), other errors as a 500
// whose cause is logged, never sent.
func Handler(log *slog.Logger, fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: http.StatusInternalServerError, Code: "INTERNAL", Msg: "internal error", Err: err}
		}
		if e.Status >= 500 {
			log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", e.Status), slog.Any("err", e.Err))
		} else if !e.Quiet && e.Err != nil {
			log.LogAttrs(r.Context(), slog.LevelInfo, "request refused", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", e.Status), slog.Any("err", e.Err))
		}
		WriteError(w, e)
	}
}

// Limit reads the query parameter limit: def when absent, else 1 to max
// (a 400 otherwise).
func Limit(r *http.Request, def, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, BadRequest("limit: want 1 to %d", max)
	}
	return n, nil
}
