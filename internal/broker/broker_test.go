package broker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"invalidations", true},
		{"edge-host-1.example.org", true},
		{"a", true},
		{"9lives", true},
		{"snake_case", true},
		{strings.Repeat("x", broker.MaxNameLen), true},
		{"", false},
		{strings.Repeat("x", broker.MaxNameLen+1), false},
		{"-leading-dash", false},
		{".hidden", false},
		{"has space", false},
		{"slash/inside", false},
		{"ünicode", false},
	}
	for _, tt := range tests {
		if got := broker.ValidName(tt.in); got != tt.want {
			t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for _, topic := range broker.Topics {
		if !broker.ValidName(topic) {
			t.Errorf("topic %q is not a valid name", topic)
		}
	}
}

func TestSubscriptionValidate(t *testing.T) {
	tests := []struct {
		name string
		sub  broker.Subscription
		ok   bool
	}{
		{"valid", broker.Subscription{Name: "workers", Topic: broker.TopicImports}, true},
		{"no name", broker.Subscription{Topic: broker.TopicImports}, false},
		{"no topic", broker.Subscription{Name: "workers"}, false},
		{"bad topic", broker.Subscription{Name: "workers", Topic: "a b"}, false},
	}
	for _, tt := range tests {
		err := tt.sub.Validate()
		if tt.ok && err != nil {
			t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, broker.ErrBadSubscription) {
			t.Errorf("%s: Validate() = %v, want ErrBadSubscription", tt.name, err)
		}
	}
	if err := broker.CheckTopic("a b"); !errors.Is(err, broker.ErrUnknownTopic) {
		t.Errorf("CheckTopic(%q) = %v, want ErrUnknownTopic", "a b", err)
	}
}

func TestBackoff(t *testing.T) {
	s := broker.Subscription{MinBackoff: time.Second, MaxBackoff: 5 * time.Second}.WithDefaults()
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 5 * time.Second},
		{100, 5 * time.Second},
	}
	for _, tt := range tests {
		if got := s.Backoff(tt.attempt); got != tt.want {
			t.Errorf("Backoff(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	got := broker.Subscription{MinBackoff: time.Minute, MaxBackoff: time.Second}.WithDefaults()
	want := broker.Subscription{AckDeadline: 30 * time.Second, MaxAttempts: 5, MinBackoff: time.Minute,
		MaxBackoff: time.Minute, Concurrency: 1}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
}
