// Package broker moves messages between Meridian's components: topics with
// at-least-once delivery to subscriptions. A subscription is either one
// node's own (fan-out: every edge and tiles node subscribes to
// TopicInvalidations under its own name and gets its own copy) or shared
// (competing consumers: all workers subscribe to TopicImports under one
// name and each message goes to one of them).
//
// Two drivers implement Broker: postgres (the default; durable messages in
// the metadata database, LISTEN/NOTIFY wake-ups, FOR UPDATE SKIP LOCKED
// delivery) and pubsub (Google Cloud Pub/Sub). brokertest holds the
// contract test suite both pass.
//
// Delivery contract:
//   - A subscription receives every message published to its topic after
//     the subscription was created, including those published while no
//     subscriber was running.
//   - Handler returning nil acks; returning an error nacks: the message is
//     redelivered after a backoff. After MaxAttempts failed deliveries it
//     goes to the dead-letter store instead. A handler that panics nacks
//     (the driver recovers and logs the panic).
//   - A subscriber that dies mid-message (crash, lost lease) causes a
//     redelivery, and the redelivered Message has Attempt > 1, so handlers
//     can tell and stay idempotent. A first delivery (Attempt == 1) happens
//     at most once per message and subscription.
//   - Order is not guaranteed.
//   - A subscription with EarlyDelivery may also get a message before it
//     is durably claimed, with Attempt 0, where the driver can (postgres:
//     from the publish notification). The durable delivery still follows;
//     it acks without calling the handler when the early call returned nil
//     in the same subscriber, and is delivered as usual otherwise.
//
// Topic and subscription names are 1 to 64 characters from [A-Za-z0-9._-],
// starting with a letter or digit (ValidName).
package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Topics used by Meridian.
const (
	// TopicInvalidations carries cache invalidations (fan-out: one
	// subscription per edge and tiles node).
	TopicInvalidations = "invalidations"
	// TopicTokenRevocations carries revoked token IDs (fan-out).
	TopicTokenRevocations = "token-revocations"
	// TopicImports carries import jobs (competing workers).
	TopicImports = "imports"
	// TopicSQLJobs carries batch SQL jobs (competing workers).
	TopicSQLJobs = "sql-jobs"
	// TopicWorkspaceEvents carries dataset change events (competing workers).
	TopicWorkspaceEvents = "workspace-events"
)

// Topics lists every topic, for drivers that must create them up front.
var Topics = []string{TopicInvalidations, TopicTokenRevocations, TopicImports, TopicSQLJobs, TopicWorkspaceEvents}

// Errors shared by drivers.
var (
	// ErrClosed is returned by every call on a closed Broker.
	ErrClosed = errors.New("broker: closed")
	// ErrUnknownTopic is returned for an empty or malformed topic name.
	ErrUnknownTopic = errors.New("broker: unknown topic")
	// ErrBadSubscription is returned for a Subscription with a missing or
	// malformed name or topic, a nil handler, or a name that already
	// exists on another topic.
	ErrBadSubscription = errors.New("broker: bad subscription")
)

// MaxNameLen is the longest topic or subscription name.
const MaxNameLen = 64

// ValidName reports whether s is a valid topic or subscription name: 1 to
// MaxNameLen characters from [A-Za-z0-9._-], the first a letter or digit.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// CheckTopic returns an error wrapping ErrUnknownTopic unless topic is a
// valid name.
func CheckTopic(topic string) error {
	if !ValidName(topic) {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	return nil
}

// Message is one delivery of a published message.
type Message struct {
	// ID is unique per published message (stable across redeliveries).
	ID string
	// Topic the message was published to.
	Topic string
	// Data is the payload (JSON by convention).
	Data []byte
	// Attributes are small string key/values set by the publisher.
	Attributes map[string]string
	// PublishedAt is when the broker accepted the message.
	PublishedAt time.Time
	// Attempt counts deliveries of this message to this subscription,
	// starting at 1. Attempt > 1 means a redelivery: an earlier delivery
	// was nacked, timed out, or its subscriber died. On a message returned
	// by DeadLetters it is the number of deliveries made.
	Attempt int
	// LastError is the error of the last failed delivery. It is set only
	// on messages returned by DeadLetters.
	LastError string
}

// Redelivered reports whether an earlier delivery of m to the same
// subscription may have been (partly) processed.
func (m *Message) Redelivered() bool { return m.Attempt > 1 }

// Handler processes one message. Returning nil acks it; an error nacks it
// (redelivered after a backoff, or dead-lettered after MaxAttempts). ctx is
// cancelled when the subscriber stops or the message's lease is lost.
type Handler func(ctx context.Context, m *Message) error

// Subscription describes a subscriber. Zero fields take the defaults given.
type Subscription struct {
	// Topic to receive from. Required.
	Topic string
	// Name of the subscription. Subscribers sharing a name compete for
	// messages; a node-specific name (e.g. "edge-" + hostname) gives that
	// node its own copy of every message. Required.
	Name string
	// AckDeadline is how long a delivery may stay unacked before it is
	// redelivered elsewhere. Drivers extend it while the handler runs.
	// Default: 30s.
	AckDeadline time.Duration
	// MaxAttempts is how many deliveries a message gets: when the handler
	// fails on attempt MaxAttempts (or a delivery would exceed it, after
	// lost leases), the message goes to the dead letters. Default: 5.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential retry delay after a
	// nack. Defaults: 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// Concurrency is how many messages this subscriber handles at once.
	// Default: 1.
	Concurrency int
	// ExpireAfter deletes the subscription when no subscriber has been
	// seen for this long (for per-node fan-out subscriptions of nodes that
	// are gone). Zero: never.
	ExpireAfter time.Duration
	// EarlyDelivery lets the driver call the handler as soon as a message
	// is published, before claiming it (Message.Attempt 0), saving the
	// claim's round trip: for a node's own fan-out subscription with a
	// cheap, idempotent handler (cache invalidations). Every subscriber of
	// the subscription gets the early call, so it is not for competing
	// consumers. The message is still claimed and acked as usual: when the
	// early call returned nil, the claim acks it without calling the
	// handler again; when it failed, or the subscriber stopped or died
	// before acking, the durable delivery calls the handler (Attempt 1 or
	// more). The postgres driver delivers early from the NOTIFY payload
	// (messages of at most MaxEarlySize bytes of data, with small
	// attributes); drivers that push messages anyway (pubsub) ignore it.
	EarlyDelivery bool
}

// MaxEarlySize is the largest Data a driver may deliver early:
// PostgreSQL's NOTIFY payloads are shorter than 8000 bytes, and the data
// travels in base64 with the attributes.
const MaxEarlySize = 5000

// Validate checks the names; it returns an error wrapping
// ErrBadSubscription.
func (s Subscription) Validate() error {
	if !ValidName(s.Name) {
		return fmt.Errorf("%w: bad name %q", ErrBadSubscription, s.Name)
	}
	if !ValidName(s.Topic) {
		return fmt.Errorf("%w %s: bad topic %q", ErrBadSubscription, s.Name, s.Topic)
	}
	return nil
}

// WithDefaults returns s with zero fields set to their defaults.
func (s Subscription) WithDefaults() Subscription {
	if s.AckDeadline <= 0 {
		s.AckDeadline = 30 * time.Second
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = 5
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = time.Minute
	}
	if s.MaxBackoff < s.MinBackoff {
		s.MaxBackoff = s.MinBackoff
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 1
	}
	return s
}

// Backoff returns the delay before redelivering after the given failed
// attempt (1-based): MinBackoff doubled per attempt, capped at MaxBackoff.
func (s Subscription) Backoff(attempt int) time.Duration {
	d := s.MinBackoff
	for i := 1; i < attempt && d < s.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.MaxBackoff)
}

// Broker is implemented by the postgres and pubsub drivers.
type Broker interface {
	// Publish sends data to topic and returns the message ID once the
	// broker has durably accepted it.
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
	// CreateSubscription makes sure the subscription exists, so that
	// messages published from now on are kept for it even before anyone
	// receives. Creating an existing subscription is not an error.
	CreateSubscription(ctx context.Context, sub Subscription) error
	// Receive creates the subscription if needed and calls h for each
	// message until ctx is cancelled; it then waits for running handlers
	// and returns nil. It returns an error only when it cannot go on.
	Receive(ctx context.Context, sub Subscription, h Handler) error
	// DeadLetters lists up to limit dead-lettered messages of a
	// subscription, oldest first.
	DeadLetters(ctx context.Context, subscription string, limit int) ([]Message, error)
	// Close releases the driver's resources.
	Close() error
}
