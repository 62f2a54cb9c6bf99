// Package clienterr types the errors that are the client's doing (a bad
// parameter, an unknown table or column), so that the HTTP boundary can
// answer each with a message written for the client, while logs keep the
// full text with its package prefixes.
//
// A package declares its kinds once (var ErrBadParams =
// clienterr.Kind("source", "bad parameters")) and makes its errors with
// Errorf(kind, tail, args...), where tail follows the kind's text
// (": want a list", " \"name\""). errors.Is(err, kind) holds; Message(err)
// is the kind's text and the tail, with the client messages of nested
// client errors in place of their full text.
package clienterr

import (
	"errors"
	"fmt"
	"strings"
)

// KindError is a kind of client error, also usable as a sentinel.
type KindError struct {
	pkg, text string
}

// Kind declares a kind of client error of package pkg.
func Kind(pkg, text string) *KindError { return &KindError{pkg: pkg, text: text} }

// Error is the log text: "pkg: text".
func (k *KindError) Error() string { return k.pkg + ": " + k.text }

// Message is the client text of the kind alone.
func (k *KindError) Message() string { return k.text }

// Error is a client error: a kind and its details.
type Error struct {
	kind    *KindError
	msg     string // the tail for the client
	wrapped error  // the tail for the logs, wrapping any %w arguments
}

// Errorf makes a client error of kind: tail is formatted as fmt.Errorf
// formats (%w wraps) and follows the kind's text.
func Errorf(kind *KindError, tail string, args ...any) error {
	client := make([]any, len(args))
	for i, a := range args {
		if err, ok := a.(error); ok {
			a = message(err)
		}
		client[i] = a
	}
	return &Error{
		kind:    kind,
		msg:     fmt.Sprintf(strings.ReplaceAll(tail, "%w", "%v"), client...),
		wrapped: fmt.Errorf(tail, args...),
	}
}

func (e *Error) Error() string { return e.kind.Error() + e.wrapped.Error() }

// Message is the client text: the kind's, then the details.
func (e *Error) Message() string { return e.kind.text + e.msg }

// Unwrap returns the kind and the wrapped arguments.
func (e *Error) Unwrap() []error {
	errs := []error{e.kind}
	switch w := e.wrapped.(type) {
	case interface{ Unwrap() error }:
		if u := w.Unwrap(); u != nil {
			errs = append(errs, u)
		}
	case interface{ Unwrap() []error }:
		errs = append(errs, w.Unwrap()...)
	}
	return errs
}

// Message returns the client text of err's outermost client error, and
// whether there is one.
func Message(err error) (string, bool) {
	var m Messager
	if errors.As(err, &m) {
		return m.Message(), true
	}
	return "", false
}

// Messager is an error with a client text: *Error, *KindError, or a
// package's own typed error (one that names a column, say).
type Messager interface {
	error
	Message() string
}

// message is Message, or err's own text for other errors.
func message(err error) string {
	if m, ok := Message(err); ok {
		return m
	}
	return err.Error()
}
