package pgbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/internal/retry"
)

// Receive creates the subscription if needed and calls h for its messages,
// up to sub.Concurrency at once, until ctx is cancelled or the broker is
// closed. It then stops claiming, waits for running handlers (renewing
// their leases), settles their messages and returns nil. Database errors
// are logged and retried with backoff; Receive returns an error only for a
// bad subscription.
func (b *Broker) Receive(ctx context.Context, sub broker.Subscription, h broker.Handler) error {
	if err := sub.Validate(); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w %s: nil handler", broker.ErrBadSubscription, sub.Name)
	}
	if !b.begin() {
		return broker.ErrClosed
	}
	defer b.receives.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.ctx, cancel)()

	r := &receiver{
		b:        b,
		sub:      sub.WithDefaults(),
		h:        h,
		log:      b.log.With("subscription", sub.Name, "topic", sub.Topic),
		wake:     make(chan struct{}, 1),
		freed:    make(chan struct{}, 1),
		inflight: map[int64]*delivery{},
		early:    map[int64]*earlyCall{},
		earlyMax: make(chan struct{}, sub.WithDefaults().Concurrency),
	}
	return r.run(ctx)
}

// receiver is one running Receive.
type receiver struct {
	b   *Broker
	sub broker.Subscription
	h   broker.Handler
	log *slog.Logger

	wake  chan struct{} // a notification arrived or a nack shortened the wait
	freed chan struct{} // a handler slot became free

	mu       sync.Mutex
	inflight map[int64]*delivery // by message ID, while the handler runs
	running  int                 // handler slots in use (inflight plus settling)

	handlers sync.WaitGroup

	// EarlyDelivery: the calls made from notifications, by message ID,
	// until the claim of the message finds them (guarded by mu); at most
	// cap(earlyMax) run at once.
	early      map[int64]*earlyCall
	earlyMax   chan struct{}
	earlyCalls sync.WaitGroup
}

// earlyCall is one early delivery: done is closed when the handler has
// returned, ok then tells whether it returned nil.
type earlyCall struct {
	done chan struct{}
	ok   bool
}

// delivery is one claimed message.
type delivery struct {
	msg     broker.Message
	id      int64
	attempt int
	lastErr string

	cancel     context.CancelFunc // cancels the handler's ctx
	leaseUntil time.Time          // local estimate; guarded by receiver.mu
}

func (r *receiver) run(ctx context.Context) error {
	if err := r.ensure(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var bg sync.WaitGroup
	bg.Go(func() { r.listen(ctx) })
	bg.Go(func() { r.housekeep(ctx) })
	// Leases are renewed until the last handler has returned, after ctx
	// is cancelled.
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	bg.Go(func() { r.renewLoop(renewCtx) })

	r.loop(ctx)
	r.handlers.Wait()
	stopRenew()
	bg.Wait()
	r.earlyCalls.Wait() // none starts once the listener has stopped
	return nil
}

// ensure creates the subscription, retrying while the database is down.
func (r *receiver) ensure(ctx context.Context) error {
	var bo retry.Backoff
	for {
		err := r.b.createSubscription(ctx, r.sub)
		if err == nil || errors.Is(err, broker.ErrBadSubscription) || ctx.Err() != nil {
			return err
		}
		d := bo.Next()
		r.log.Warn("creating subscription failed; retrying", "err", err, "retry_in", d)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// loop claims messages while handler slots are free and starts their
// handlers, until ctx is cancelled.
func (r *receiver) loop(ctx context.Context) {
	var bo retry.Backoff
	for ctx.Err() == nil {
		free := r.free()
		if free == 0 {
			select {
			case <-r.freed:
			case <-ctx.Done():
			}
			continue
		}
		ds, err := r.claim(ctx, free)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := bo.Next()
			r.log.Warn("claiming messages failed; retrying", "err", err, "retry_in", d)
			retry.Sleep(ctx, d)
			continue
		}
		bo.Reset()
		if ctx.Err() != nil {
			r.release(ds)
			return
		}
		for _, d := range ds {
			if d.attempt > r.sub.MaxAttempts {
				// Leases ran out too often (subscribers dying on it).
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				r.settle(sctx, "dead-letter", d, func(ctx context.Context) error {
					return r.deadLetter(ctx, d, d.attempt-1, "delivered "+strconv.Itoa(d.attempt-1)+" times without an ack; last error: "+d.lastErr)
				})
				cancel()
				continue
			}
			r.start(ctx, d)
		}
		if len(ds) < free {
			r.idle(ctx)
		}
	}
}

func (r *receiver) free() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sub.Concurrency - r.running
}

// idle waits for a notification, the next delivery becoming visible, or
// the poll interval.
func (r *receiver) idle(ctx context.Context) {
	wait := r.b.cfg.PollInterval.D()
	if d, ok := r.nextVisible(ctx); ok && d < wait {
		wait = d
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.wake:
	case <-t.C:
	case <-ctx.Done():
	}
}

// nextVisible returns how long until a delivery of the subscription may
// be claimed: a nacked message's backoff or a lease running out.
func (r *receiver) nextVisible(ctx context.Context) (time.Duration, bool) {
	var secs *float64
	err := r.b.pool.QueryRow(ctx, `SELECT EXTRACT(EPOCH FROM min(visible_at) - clock_timestamp())::float8
		FROM broker_deliveries WHERE subscription = $1`, r.sub.Name).Scan(&secs)
	if err != nil || secs == nil {
		return 0, false
	}
	d := time.Duration(*secs * float64(time.Second))
	if d <= 0 {
		// Visible but not claimed: another subscriber is claiming it.
		return 20 * time.Millisecond, true
	}
	return d + time.Millisecond, true
}

const claimSQL = `WITH c AS MATERIALIZED (
		SELECT subscription, message_id FROM broker_deliveries
		WHERE subscription = $1 AND visible_at <= now()
		ORDER BY visible_at, message_id
		LIMIT $2
		FOR UPDATE SKIP LOCKED)
	UPDATE broker_deliveries d
	SET attempt = d.attempt + 1, visible_at = now() + $3 * interval '1 microsecond', leased_by = $4
	FROM c, broker_messages m
	WHERE d.subscription = c.subscription AND d.message_id = c.message_id AND m.id = d.message_id
	RETURNING d.message_id, d.attempt, d.last_error, m.topic, m.data, m.attributes, m.published_at`

// claim leases up to n visible deliveries.
func (r *receiver) claim(ctx context.Context, n int) ([]*delivery, error) {
	// Not cancelled with ctx: a claim committed after its caller gave up
	// would hold leases nobody works on until they run out.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	start := time.Now()
	rows, err := r.b.pool.Query(cctx, claimSQL, r.sub.Name, n, r.sub.AckDeadline.Microseconds(), r.b.cfg.ConsumerID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ds []*delivery
	for rows.Next() {
		d := &delivery{leaseUntil: start.Add(r.sub.AckDeadline)}
		if err := rows.Scan(&d.id, &d.attempt, &d.lastErr, &d.msg.Topic, &d.msg.Data, &d.msg.Attributes, &d.msg.PublishedAt); err != nil {
			return nil, err
		}
		d.msg.ID = strconv.FormatInt(d.id, 10)
		d.msg.Attempt = d.attempt
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

// release gives back claimed deliveries whose handlers never started, as
// if they had not been claimed.
func (r *receiver) release(ds []*delivery) {
	if len(ds) == 0 {
		return
	}
	ids, attempts := keys(ds)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.b.pool.Exec(ctx, `UPDATE broker_deliveries
		SET attempt = attempt - 1, visible_at = now(), leased_by = NULL
		WHERE subscription = $1 AND (message_id, attempt) IN (SELECT * FROM unnest($2::bigint[], $3::int[]))`,
		r.sub.Name, ids, attempts); err != nil {
		r.log.Warn("releasing unstarted messages failed; they will be redelivered when their lease runs out", "err", err)
	}
}

func keys(ds []*delivery) ([]int64, []int32) {
	ids := make([]int64, len(ds))
	attempts := make([]int32, len(ds))
	for i, d := range ds {
		ids[i], attempts[i] = d.id, int32(d.attempt)
	}
	return ids, attempts
}

// start runs the handler of d in its own goroutine.
func (r *receiver) start(ctx context.Context, d *delivery) {
	hctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	r.mu.Lock()
	r.inflight[d.id] = d
	r.running++
	r.mu.Unlock()
	r.handlers.Go(func() { r.handle(ctx, hctx, d) })
}

// handle calls the handler and acks, nacks or dead-letters the message.
func (r *receiver) handle(rctx, hctx context.Context, d *delivery) {
	var err error
	if !r.earlyDone(d.id) {
		err = r.call(hctx, d)
	}
	d.cancel()
	r.mu.Lock()
	delete(r.inflight, d.id)
	r.mu.Unlock()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(rctx), 10*time.Second)
	defer cancel()
	stopping := rctx.Err() != nil && errors.Is(err, context.Canceled)
	switch {
	case err == nil:
		r.settle(sctx, "ack", d, func(ctx context.Context) error {
			_, err := r.b.pool.Exec(ctx, `DELETE FROM broker_deliveries
				WHERE subscription = $1 AND message_id = $2 AND attempt = $3`, r.sub.Name, d.id, d.attempt)
			return err
		})
	case d.attempt >= r.sub.MaxAttempts && !stopping:
		r.settle(sctx, "dead-letter", d, func(ctx context.Context) error { return r.deadLetter(ctx, d, d.attempt, err.Error()) })
	default:
		// A handler interrupted by shutdown is redelivered at once, to
		// another subscriber if there is one.
		delay := r.sub.Backoff(d.attempt)
		if stopping {
			delay = 0
		}
		r.settle(sctx, "nack", d, func(ctx context.Context) error {
			_, err := r.b.pool.Exec(ctx, `UPDATE broker_deliveries
				SET visible_at = now() + $4 * interval '1 microsecond', leased_by = NULL, last_error = $5
				WHERE subscription = $1 AND message_id = $2 AND attempt = $3`,
				r.sub.Name, d.id, d.attempt, delay.Microseconds(), truncate(err.Error(), 2000))
			return err
		})
	}
	r.mu.Lock()
	r.running--
	r.mu.Unlock()
	signal(r.freed)
	if err != nil {
		signal(r.wake) // the nacked message may be due before the next poll
	}
}

// call runs the handler on a copy of the message, turning a panic into an
// error.
func (r *receiver) call(ctx context.Context, d *delivery) error {
	m := d.msg
	return r.callMessage(ctx, &m)
}

func (r *receiver) callMessage(ctx context.Context, m *broker.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("handler panicked", "message_id", m.ID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return r.h(ctx, m)
}

// notification is the payload Publish sends with NOTIFY. Data is absent
// when the message is too large to travel in it.
type notification struct {
	ID          int64             `json:"id"`
	PublishedAt time.Time         `json:"published_at"`
	Data        *[]byte           `json:"data"`
	Attributes  map[string]string `json:"attributes"`
}

// deliverEarly calls the handler, in its own goroutine, on the message a
// notification carries, when the subscription has EarlyDelivery and a
// slot is free (otherwise the message waits for its claim, as without
// EarlyDelivery). The claim of the message then acks it without calling
// the handler again if this call succeeded (earlyDone).
func (r *receiver) deliverEarly(ctx context.Context, payload string) {
	if !r.sub.EarlyDelivery || payload == "" {
		return
	}
	var n notification
	if err := json.Unmarshal([]byte(payload), &n); err != nil || n.Data == nil {
		return
	}
	select {
	case r.earlyMax <- struct{}{}:
	default:
		return
	}
	e := &earlyCall{done: make(chan struct{})}
	r.mu.Lock()
	if _, seen := r.early[n.ID]; seen {
		// Already claimed: the durable delivery handles it.
		r.mu.Unlock()
		<-r.earlyMax
		return
	}
	r.rememberLocked(n.ID, e)
	r.mu.Unlock()
	m := &broker.Message{ID: strconv.FormatInt(n.ID, 10), Topic: r.sub.Topic, Data: *n.Data,
		Attributes: n.Attributes, PublishedAt: n.PublishedAt}
	if m.Attributes == nil {
		m.Attributes = map[string]string{}
	}
	r.earlyCalls.Go(func() {
		defer func() { <-r.earlyMax }()
		err := r.callMessage(ctx, m)
		if err != nil {
			r.log.Debug("early delivery failed; the message will be delivered when claimed", "message_id", m.ID, "err", err)
		}
		e.ok = err == nil
		close(e.done)
	})
}

// maxEarly bounds the early calls remembered.
const maxEarly = 1024

// claimedEarly marks a message claimed before any early call: a
// notification read after the claim does not call the handler again.
var claimedEarly = func() *earlyCall {
	c := &earlyCall{done: make(chan struct{})}
	close(c.done)
	return c
}()

// rememberLocked records e as the early call of message id. Past maxEarly
// entries it forgets the finished ones (calls of messages claimed or
// claimed elsewhere): forgetting one costs at most a second handler call.
func (r *receiver) rememberLocked(id int64, e *earlyCall) {
	if len(r.early) >= maxEarly {
		for id, c := range r.early {
			select {
			case <-c.done:
				delete(r.early, id)
			default:
			}
		}
	}
	r.early[id] = e
}

// earlyDone reports whether an early call handled the claimed message id
// successfully, waiting for it if it still runs. With EarlyDelivery it
// remembers id as claimed, so that its notification, if read only now,
// does not call the handler again.
func (r *receiver) earlyDone(id int64) bool {
	if !r.sub.EarlyDelivery {
		return false
	}
	r.mu.Lock()
	e := r.early[id]
	if e == nil {
		r.rememberLocked(id, claimedEarly)
	}
	r.mu.Unlock()
	if e == nil {
		return false
	}
	<-e.done
	return e.ok
}

// settle runs f (ack, nack, dead-letter) until it succeeds, ctx ends or
// the lease has run out, when retrying is pointless: the message will be
// redelivered.
func (r *receiver) settle(ctx context.Context, what string, d *delivery, f func(context.Context) error) {
	var bo retry.Backoff
	for {
		err := f(ctx)
		if err == nil {
			return
		}
		r.mu.Lock()
		lease := d.leaseUntil
		r.mu.Unlock()
		if time.Now().After(lease) || ctx.Err() != nil {
			r.log.Warn(what+" failed; the message will be redelivered", "message_id", d.msg.ID, "attempt", d.attempt, "err", err)
			return
		}
		retry.Sleep(ctx, bo.Next())
	}
}

// deadLetter moves d to the dead letters, if this claim still holds it,
// recording the number of deliveries made.
func (r *receiver) deadLetter(ctx context.Context, d *delivery, attempts int, reason string) error {
	_, err := r.b.pool.Exec(ctx, `WITH d AS (
			DELETE FROM broker_deliveries WHERE subscription = $1 AND message_id = $2 AND attempt = $3
			RETURNING subscription, message_id, attempt)
		INSERT INTO broker_dead_letters (subscription, message_id, topic, data, attributes, published_at, attempts, last_error)
		SELECT d.subscription, m.id, m.topic, m.data, m.attributes, m.published_at, $5, $4
		FROM d JOIN broker_messages m ON m.id = d.message_id
		ON CONFLICT (subscription, message_id) DO NOTHING`,
		r.sub.Name, d.id, d.attempt, truncate(reason, 2000), attempts)
	if err == nil {
		r.log.Warn("message dead-lettered", "message_id", d.msg.ID, "attempts", attempts, "err", reason)
	}
	return err
}

// renewLoop extends the leases of running handlers every third of the
// ack deadline, until ctx is cancelled.
func (r *receiver) renewLoop(ctx context.Context) {
	t := time.NewTicker(max(r.sub.AckDeadline/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.renew(ctx)
		}
	}
}

// renew extends the running handlers' leases. A handler whose lease is
// lost (claimed again elsewhere after it ran out) or cannot be renewed
// before it runs out has its ctx cancelled.
func (r *receiver) renew(ctx context.Context) {
	r.mu.Lock()
	ds := make([]*delivery, 0, len(r.inflight))
	for _, d := range r.inflight {
		ds = append(ds, d)
	}
	r.mu.Unlock()
	if len(ds) == 0 {
		return
	}
	ids, attempts := keys(ds)
	start := time.Now()
	qctx, cancel := context.WithTimeout(ctx, r.sub.AckDeadline)
	defer cancel()
	rows, err := r.b.pool.Query(qctx, `UPDATE broker_deliveries SET visible_at = now() + $2 * interval '1 microsecond'
		WHERE subscription = $1 AND (message_id, attempt) IN (SELECT * FROM unnest($3::bigint[], $4::int[]))
		RETURNING message_id`, r.sub.Name, r.sub.AckDeadline.Microseconds(), ids, attempts)
	var renewed []int64
	if err == nil {
		renewed, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("renewing leases failed", "err", err)
		}
		for _, d := range ds {
			if time.Now().After(d.leaseUntil) {
				r.log.Warn("lease ran out; cancelling handler", "message_id", d.msg.ID, "attempt", d.attempt)
				d.cancel()
			}
		}
		return
	}
	ok := make(map[int64]bool, len(renewed))
	for _, id := range renewed {
		ok[id] = true
	}
	for _, d := range ds {
		if r.inflight[d.id] != d {
			continue // finished meanwhile
		}
		if ok[d.id] {
			d.leaseUntil = start.Add(r.sub.AckDeadline)
		} else {
			r.log.Warn("lease lost; cancelling handler", "message_id", d.msg.ID, "attempt", d.attempt)
			d.cancel()
		}
	}
}

// listen keeps a LISTEN connection on the topic's channel, reconnecting
// with backoff, and wakes the claim loop on each notification.
func (r *receiver) listen(ctx context.Context) {
	var bo retry.Backoff
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, &bo)
		if ctx.Err() != nil {
			return
		}
		d := bo.Next()
		r.log.Warn("listener connection lost; reconnecting", "err", err, "retry_in", d)
		retry.Sleep(ctx, d)
	}
}

func (r *receiver) listenOnce(ctx context.Context, bo *retry.Backoff) error {
	cfg := r.b.pool.Config().ConnConfig
	name := cfg.RuntimeParams["application_name"]
	if name == "" {
		name = "meridian"
	}
	cfg.RuntimeParams["application_name"] = name + " broker listener"
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel(r.sub.Topic)}.Sanitize()); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	bo.Reset()
	signal(r.wake) // messages may have come while not listening
	for {
		// Wake up now and then to check the connection: a peer that
		// vanished without closing it would otherwise go unnoticed.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case err == nil:
			r.deliverEarly(ctx, n.Payload)
			signal(r.wake)
		case ctx.Err() != nil:
			return nil
		case timedOut:
			if err := conn.Ping(ctx); err != nil {
				return fmt.Errorf("pinging: %w", err)
			}
		default:
			return err
		}
	}
}

// housekeep refreshes the subscription's last-seen time (so it does not
// expire while received) and runs Cleanup every CleanupInterval.
func (r *receiver) housekeep(ctx context.Context) {
	every := 5 * time.Minute
	if e := r.sub.ExpireAfter; e > 0 {
		every = min(max(e/4, 50*time.Millisecond), time.Minute)
	}
	touch := time.NewTicker(every)
	defer touch.Stop()
	var clean <-chan time.Time
	if ci := r.b.cfg.CleanupInterval.D(); ci > 0 {
		// Jittered, so that receivers started together spread out.
		t := time.NewTicker(ci/2 + rand.N(ci))
		defer t.Stop()
		clean = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-touch.C:
			r.touch(ctx)
		case <-clean:
			if err := r.b.Cleanup(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("broker cleanup failed", "err", err)
			}
		}
	}
}

func (r *receiver) touch(ctx context.Context) {
	tag, err := r.b.pool.Exec(ctx, `UPDATE broker_subscriptions SET last_seen_at = now() WHERE name = $1 AND topic = $2`,
		r.sub.Name, r.sub.Topic)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("refreshing subscription failed", "err", err)
		}
		return
	}
	if tag.RowsAffected() == 0 {
		r.log.Warn("subscription was deleted while receiving (idle longer than expire_after?); recreating it, messages published meanwhile are lost")
		if err := r.b.createSubscription(ctx, r.sub); err != nil && ctx.Err() == nil {
			r.log.Warn("recreating subscription failed", "err", err)
		}
	}
}

// signal does a non-blocking send on a 1-buffered channel.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// truncate shortens s to at most n bytes of valid UTF-8 without NULs, as
// PostgreSQL text requires.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\x00", "")
}
