// Package pubsubbroker is the Google Cloud Pub/Sub broker driver
// (cloud.google.com/go/pubsub/v2).
//
// Each Meridian topic is a Pub/Sub topic and each subscription a Pub/Sub
// subscription, both named Prefix+name and created on demand. A
// subscription gets the ack deadline, a retry policy (MinBackoff,
// MaxBackoff) and a dead-letter policy pointing at the Prefix+"dead-letters"
// topic, which has a subscription of the same name that DeadLetters reads.
// The client library renews leases while handlers run, in extensions of
// at most the ack deadline, so the messages of a subscriber that died come
// back after about AckDeadline (at least 10s). A handler's ctx is
// cancelled when Receive stops, not when a lease is lost (the client
// library does not report that).
//
// Permissions: subscribers publish to the dead-letter topic themselves;
// for the service's own dead-lettering, the Pub/Sub service agent needs
// publisher on that topic and subscriber on the subscriptions. Dead
// letters are kept 7 days (the dead-letter subscription's retention).
//
// Attempt is the larger of the message's DeliveryAttempt (counted by the
// service, as a dead-letter policy is always set; Google documents it as
// approximate) and this process's own count. The driver dead-letters
// itself: when a handler fails at attempt MaxAttempts it publishes the
// message to the dead-letter topic with attributes saying where it came
// from, then acks it. The service's
// dead-letter policy (MaxDeliveryAttempts, clamped to Pub/Sub's 5–100) is
// only a backstop for messages whose subscribers keep dying.
//
// Pub/Sub limits: ack deadlines are clamped to 10s–600s, backoffs to
// 0–600s, and ExpireAfter to at least 24h.
//
// Testing against pstest (the in-process fake) works with Insecure and
// ClientBackoff set. The fake has no retry backoff (ClientBackoff makes up
// for it), counts delivery attempts per message rather than per
// subscription (with fan-out, a first delivery may carry Attempt 2), and
// never sets the dead-letter source attributes on messages it
// dead-letters itself.
package pubsubbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/config"
)

// Config configures the driver. Zero fields take the defaults given.
type Config struct {
	// ProjectID is the Google Cloud project holding the topics and
	// subscriptions. Required.
	ProjectID string `json:"project_id"`
	// Endpoint is the Pub/Sub API address, host:port. Default: Google's,
	// or $PUBSUB_EMULATOR_HOST when that is set.
	Endpoint string `json:"endpoint,omitempty"`
	// Insecure connects to Endpoint in plain text without credentials, as
	// the emulator and pstest need. Default: false (TLS and Application
	// Default Credentials).
	Insecure bool `json:"insecure,omitempty"`
	// Prefix goes before every topic and subscription ID so that several
	// installations can share a project; it must start with a letter.
	// Default: "meridian-".
	Prefix string `json:"prefix,omitempty"`
	// ClientBackoff makes the driver wait Subscription.Backoff(attempt)
	// before nacking, for servers that ignore the retry policy (pstest,
	// the emulator). Pub/Sub itself applies the policy: leave it off.
	// Default: false.
	ClientBackoff bool `json:"client_backoff,omitempty"`
	// PublishDelay is how long the publisher waits to batch messages.
	// Default: 1ms.
	PublishDelay config.Duration `json:"publish_delay,omitempty"`
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "meridian-"
	}
	if c.PublishDelay <= 0 {
		c.PublishDelay = config.Duration(time.Millisecond)
	}
}

// Validate reports every problem with c (after defaults).
func (c Config) Validate() error {
	var errs []error
	if c.ProjectID == "" {
		errs = append(errs, errors.New("pubsub broker: project_id is required"))
	}
	if p := c.Prefix; p != "" && !(p[0] >= 'a' && p[0] <= 'z' || p[0] >= 'A' && p[0] <= 'Z') {
		errs = append(errs, fmt.Errorf("pubsub broker: prefix %q must start with a letter", p))
	}
	if c.Insecure && c.Endpoint == "" {
		errs = append(errs, errors.New("pubsub broker: insecure needs an endpoint"))
	}
	return errors.Join(errs...)
}

// deadLetters names the dead-letter topic and its subscription (after
// Prefix); it is not available as a Meridian topic or subscription name.
const deadLetters = "dead-letters"

// Attributes the driver sets on the messages it dead-letters.
const (
	attrPrefix       = "meridian-dl-"
	attrSubscription = attrPrefix + "subscription"
	attrTopic        = attrPrefix + "topic"
	attrID           = attrPrefix + "id"
	attrPublishedAt  = attrPrefix + "published-at"
	attrAttempts     = attrPrefix + "attempts"
	attrError        = attrPrefix + "error"
	// Set by Pub/Sub on messages its dead-letter policy forwards.
	attrSourceSubscription = "CloudPubSubDeadLetterSourceSubscription"
	attrSourceCount        = "CloudPubSubDeadLetterSourceDeliveryCount"
)

// Broker is the Pub/Sub driver.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	client *pubsub.Client

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu         sync.Mutex
	closed     bool                         // no more API calls
	stopped    bool                         // publishers stopped
	publishers map[string]*pubsub.Publisher // by topic ID
	topics     map[string]bool              // topic IDs known to exist
	receives   sync.WaitGroup

	attempts attemptCounter
}

// New connects to Pub/Sub. opts are added to the client options the
// config implies. log may be nil.
func New(ctx context.Context, cfg Config, log *slog.Logger, opts ...option.ClientOption) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var o []option.ClientOption
	if cfg.Endpoint != "" {
		o = append(o, option.WithEndpoint(cfg.Endpoint))
	}
	if cfg.Insecure {
		o = append(o,
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithTelemetryDisabled())
	}
	client, err := pubsub.NewClient(ctx, cfg.ProjectID, append(o, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to pubsub: %w", err)
	}
	bctx, cancel := context.WithCancel(context.Background())
	return &Broker{
		cfg:        cfg,
		log:        log.With("broker", "pubsub"),
		client:     client,
		ctx:        bctx,
		cancel:     cancel,
		publishers: map[string]*pubsub.Publisher{},
		topics:     map[string]bool{},
	}, nil
}

func (b *Broker) topicPath(id string) string {
	return "projects/" + b.cfg.ProjectID + "/topics/" + id
}

func (b *Broker) subPath(id string) string {
	return "projects/" + b.cfg.ProjectID + "/subscriptions/" + id
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func checkTopic(topic string) error {
	if topic == deadLetters {
		return fmt.Errorf("%w: %q is reserved", broker.ErrUnknownTopic, topic)
	}
	return broker.CheckTopic(topic)
}

func checkSub(sub broker.Subscription) error {
	if err := sub.Validate(); err != nil {
		return err
	}
	if sub.Name == deadLetters || sub.Topic == deadLetters {
		return fmt.Errorf("%w: %q is reserved", broker.ErrBadSubscription, deadLetters)
	}
	return nil
}

// Publish sends the message and waits until Pub/Sub has stored it.
func (b *Broker) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	if b.isClosed() {
		return "", broker.ErrClosed
	}
	if err := checkTopic(topic); err != nil {
		return "", err
	}
	id, err := b.publish(ctx, b.cfg.Prefix+topic, data, attrs)
	if err != nil {
		return "", fmt.Errorf("publishing to %s: %w", topic, err)
	}
	return id, nil
}

func (b *Broker) publish(ctx context.Context, topicID string, data []byte, attrs map[string]string) (string, error) {
	p, err := b.publisher(ctx, topicID)
	if err != nil {
		return "", err
	}
	return p.Publish(ctx, &pubsub.Message{Data: data, Attributes: attrs}).Get(ctx)
}

// publisher returns the publisher of topicID, creating the topic first.
func (b *Broker) publisher(ctx context.Context, topicID string) (*pubsub.Publisher, error) {
	if err := b.ensureTopic(ctx, topicID); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return nil, broker.ErrClosed
	}
	p := b.publishers[topicID]
	if p == nil {
		p = b.client.Publisher(topicID)
		p.PublishSettings.DelayThreshold = b.cfg.PublishDelay.D()
		b.publishers[topicID] = p
	}
	return p, nil
}

// ensureTopic creates topicID unless this broker knows it exists.
func (b *Broker) ensureTopic(ctx context.Context, topicID string) error {
	b.mu.Lock()
	known := b.topics[topicID]
	b.mu.Unlock()
	if known {
		return nil
	}
	_, err := b.client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: b.topicPath(topicID)})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("creating topic %s: %w", topicID, err)
	}
	b.mu.Lock()
	b.topics[topicID] = true
	b.mu.Unlock()
	return nil
}

// ensureDeadLetters creates the dead-letter topic and its subscription.
func (b *Broker) ensureDeadLetters(ctx context.Context) error {
	id := b.cfg.Prefix + deadLetters
	b.mu.Lock()
	known := b.topics[id+"/sub"]
	b.mu.Unlock()
	if known {
		return nil
	}
	if err := b.ensureTopic(ctx, id); err != nil {
		return err
	}
	_, err := b.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                     b.subPath(id),
		Topic:                    b.topicPath(id),
		AckDeadlineSeconds:       60,
		MessageRetentionDuration: durationpb.New(7 * 24 * time.Hour),
		ExpirationPolicy:         &pubsubpb.ExpirationPolicy{}, // never
	})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("creating subscription %s: %w", id, err)
	}
	b.mu.Lock()
	b.topics[id+"/sub"] = true
	b.mu.Unlock()
	return nil
}

// CreateSubscription creates sub (and its topic) unless it exists. The
// settings of an existing subscription are left as they are; a name that
// exists on another topic fails with broker.ErrBadSubscription.
func (b *Broker) CreateSubscription(ctx context.Context, sub broker.Subscription) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	if err := checkSub(sub); err != nil {
		return err
	}
	return b.createSubscription(ctx, sub.WithDefaults())
}

func (b *Broker) createSubscription(ctx context.Context, sub broker.Subscription) error {
	topicID := b.cfg.Prefix + sub.Topic
	if err := b.ensureTopic(ctx, topicID); err != nil {
		return err
	}
	if err := b.ensureDeadLetters(ctx); err != nil {
		return err
	}
	exp := &pubsubpb.ExpirationPolicy{} // never
	if sub.ExpireAfter > 0 {
		exp.Ttl = durationpb.New(max(sub.ExpireAfter, 24*time.Hour))
	}
	ackSecs := int32(min(max((sub.AckDeadline+time.Second-1)/time.Second, 10), 600))
	name := b.subPath(b.cfg.Prefix + sub.Name)
	_, err := b.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:               name,
		Topic:              b.topicPath(topicID),
		AckDeadlineSeconds: ackSecs,
		RetryPolicy: &pubsubpb.RetryPolicy{
			MinimumBackoff: durationpb.New(min(sub.MinBackoff, 600*time.Second)),
			MaximumBackoff: durationpb.New(min(sub.MaxBackoff, 600*time.Second)),
		},
		DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{
			DeadLetterTopic:     b.topicPath(b.cfg.Prefix + deadLetters),
			MaxDeliveryAttempts: int32(min(max(sub.MaxAttempts, 5), 100)),
		},
		ExpirationPolicy: exp,
	})
	if status.Code(err) == codes.AlreadyExists {
		got, gerr := b.client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
		if gerr != nil {
			return fmt.Errorf("checking subscription %s: %w", sub.Name, gerr)
		}
		if got.Topic != b.topicPath(topicID) {
			return fmt.Errorf("%w: %s already exists on another topic than %s", broker.ErrBadSubscription, sub.Name, sub.Topic)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating subscription %s: %w", sub.Name, err)
	}
	return nil
}

// DeadLetters lists up to limit (default 100) messages dead-lettered from
// subscription, in the order they died. It pulls every message of the
// dead-letter subscription and releases them at once, so concurrent calls
// may each see part of the list; it looks at 10000 messages at most.
func (b *Broker) DeadLetters(ctx context.Context, subscription string, limit int) ([]broker.Message, error) {
	if b.isClosed() {
		return nil, broker.ErrClosed
	}
	if !broker.ValidName(subscription) {
		return nil, fmt.Errorf("%w: bad name %q", broker.ErrBadSubscription, subscription)
	}
	if limit <= 0 {
		limit = 100
	}
	if err := b.ensureDeadLetters(ctx); err != nil {
		return nil, fmt.Errorf("listing dead letters of %s: %w", subscription, err)
	}
	dlSub := b.subPath(b.cfg.Prefix + deadLetters)
	sc := b.client.SubscriptionAdminClient
	var got []*pubsubpb.ReceivedMessage
	defer func() {
		// Release everything pulled, so that it stays listed.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for chunk := range slices.Chunk(got, 1000) {
			ids := make([]string, len(chunk))
			for i, m := range chunk {
				ids[i] = m.AckId
			}
			if err := sc.ModifyAckDeadline(rctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: dlSub, AckIds: ids}); err != nil {
				b.log.Warn("releasing listed dead letters failed; they show again after their ack deadline", "err", err)
				return
			}
		}
	}()
	for len(got) < 10000 {
		// ReturnImmediately is deprecated, but a listing must not wait
		// for new messages.
		resp, err := sc.Pull(ctx, &pubsubpb.PullRequest{Subscription: dlSub, MaxMessages: 1000, ReturnImmediately: true})
		if err != nil {
			return nil, fmt.Errorf("listing dead letters of %s: %w", subscription, err)
		}
		if len(resp.ReceivedMessages) == 0 {
			break
		}
		got = append(got, resp.ReceivedMessages...)
	}
	type dead struct {
		m    broker.Message
		died time.Time
	}
	var ds []dead
	seen := map[string]bool{}
	for _, rm := range got {
		m, ok := b.deadLetterOf(rm.GetMessage(), subscription)
		if !ok || seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		ds = append(ds, dead{m, rm.GetMessage().GetPublishTime().AsTime()})
	}
	slices.SortStableFunc(ds, func(a, b dead) int { return a.died.Compare(b.died) })
	out := make([]broker.Message, 0, min(limit, len(ds)))
	for _, d := range ds[:min(limit, len(ds))] {
		out = append(out, d.m)
	}
	return out, nil
}

// deadLetterOf turns a message of the dead-letter topic into the message
// it was, if it came from subscription.
func (b *Broker) deadLetterOf(pm *pubsubpb.PubsubMessage, subscription string) (broker.Message, bool) {
	a := pm.GetAttributes()
	switch {
	case a[attrSubscription] == subscription:
	case a[attrSourceSubscription] != "" && (a[attrSourceSubscription] == b.cfg.Prefix+subscription ||
		a[attrSourceSubscription] == b.subPath(b.cfg.Prefix+subscription)):
	default:
		return broker.Message{}, false
	}
	m := broker.Message{
		ID:          a[attrID],
		Topic:       a[attrTopic],
		Data:        pm.GetData(),
		Attributes:  map[string]string{},
		PublishedAt: pm.GetPublishTime().AsTime(),
		LastError:   a[attrError],
	}
	if m.ID == "" {
		m.ID = pm.GetMessageId()
	}
	if t, err := time.Parse(time.RFC3339Nano, a[attrPublishedAt]); err == nil {
		m.PublishedAt = t
	}
	if n, err := strconv.Atoi(a[attrAttempts]); err == nil {
		m.Attempt = n
	} else if n, err := strconv.Atoi(a[attrSourceCount]); err == nil {
		m.Attempt = n
	}
	for k, v := range a {
		if !strings.HasPrefix(k, attrPrefix) && !strings.HasPrefix(k, "CloudPubSubDeadLetter") {
			m.Attributes[k] = v
		}
	}
	return m, true
}

// Close stops running Receives (waiting for their handlers), flushes the
// publishers and closes the client. Later calls fail with
// broker.ErrClosed; a second Close does nothing.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.receives.Wait()
	b.mu.Lock()
	b.stopped = true
	pubs := maps.Clone(b.publishers)
	b.mu.Unlock()
	for _, p := range pubs {
		p.Stop()
	}
	if err := b.client.Close(); err != nil {
		return fmt.Errorf("closing pubsub client: %w", err)
	}
	return nil
}

var _ broker.Broker = (*Broker)(nil)
