// Package lds serves Location Data Services under /api/v3/lds/ with
// CARTO's parameters and [{error, value}] envelopes (CARTO_API.md §8,
// PLATFORM.md §6): geocoding (forward, reverse, batch), routing (and an
// origin–destination matrix), isolines, and quota stats. The engines are
// packages geocode and routing on the meridian_lds schema of a data
// database (built by `meridian lds load`, package ldsload); quotas are
// counted per organization and month in the metadata database.
//
// Request errors (bad parameters, no token, spent quota) are JSON
// {"error","status","code"} with a 4xx status; an answer the engine
// cannot give for one input (nothing found at sea, unreachable
// destination) is that entry's "error" in a 200 envelope, so a batch
// never fails for one bad address.
package lds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/lds/geocode"
	"github.com/meridian-gis/meridian/control/lds/routing"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/identity"
)

// DefaultOrg is the organization of callers whose token names none (the
// platform's default organization, as everywhere else).
const DefaultOrg = identity.DefaultOrg

// MaxBatch is the most addresses one batch may hold.
const MaxBatch = 10000

// Config configures the LDS API.
type Config struct {
	// DatabaseURL is the data database holding schema meridian_lds (see
	// `meridian lds load`). Empty: no engine, every operation answers
	// 400 Unsupported provider.
	DatabaseURL string `json:"database_url,omitempty" env:"MERIDIAN_LDS_DATABASE_URL"`
	// MaxConns caps connections to that database. Default: 8.
	MaxConns int32 `json:"max_conns,omitempty" env:"MERIDIAN_LDS_MAX_CONNS"`
	// GeocodingQuota, RoutingQuota, IsolinesQuota are the default monthly
	// quotas per organization (lds_quotas rows override them). Defaults:
	// 1,000,000, 100,000, 100,000.
	GeocodingQuota int64 `json:"geocoding_quota,omitempty" env:"MERIDIAN_LDS_GEOCODING_QUOTA"`
	RoutingQuota   int64 `json:"routing_quota,omitempty" env:"MERIDIAN_LDS_ROUTING_QUOTA"`
	IsolinesQuota  int64 `json:"isolines_quota,omitempty" env:"MERIDIAN_LDS_ISOLINES_QUOTA"`
	// Timeout bounds one request's database work (a batch: each
	// address). Default: 30s.
	Timeout config.Duration `json:"timeout,omitempty" env:"MERIDIAN_LDS_TIMEOUT"`
	// BatchWorkers is how many addresses of a batch are geocoded at once.
	// Default: 4.
	BatchWorkers int `json:"batch_workers,omitempty" env:"MERIDIAN_LDS_BATCH_WORKERS"`
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.MaxConns == 0 {
		c.MaxConns = 8
	}
	if c.GeocodingQuota == 0 {
		c.GeocodingQuota = 1_000_000
	}
	if c.RoutingQuota == 0 {
		c.RoutingQuota = 100_000
	}
	if c.IsolinesQuota == 0 {
		c.IsolinesQuota = 100_000
	}
	if c.Timeout == 0 {
		c.Timeout = config.Duration(30 * time.Second)
	}
	if c.BatchWorkers == 0 {
		c.BatchWorkers = 4
	}
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.GeocodingQuota < 0 || c.RoutingQuota < 0 || c.IsolinesQuota < 0 {
		errs = append(errs, errors.New("lds quotas: must not be negative (MERIDIAN_LDS_*_QUOTA)"))
	}
	if c.BatchWorkers < 0 || c.BatchWorkers > 64 {
		errs = append(errs, errors.New("lds batch_workers: 1..64 (MERIDIAN_LDS_BATCH_WORKERS)"))
	}
	return errors.Join(errs...)
}

// Authorize checks a request's credentials for the LDS API. On refusal
// it has answered the request itself (401/403) and returns ok false;
// else it returns the caller's organization id ("" for none).
type Authorize func(w http.ResponseWriter, r *http.Request) (org string, ok bool)

// Deps are the service's collaborators.
type Deps struct {
	// Log receives logs. Required.
	Log *slog.Logger
	// Meta is the metadata database (quotas). Required.
	Meta *pgxpool.Pool
	// Data is the database holding meridian_lds, its pool configured
	// with geocode.AfterConnect. Optional: when nil and
	// Config.DatabaseURL is set, such a pool on that URL is opened.
	Data *pgxpool.Pool
	// Authorize authenticates callers. Required.
	Authorize Authorize
	// Now is the clock (quota months). Default: time.Now.
	Now func() time.Time
}

// Service is the LDS API.
type Service struct {
	cfg      Config
	log      *slog.Logger
	auth     Authorize
	quotas   *quotas
	geo      *geocode.Geocoder
	router   *routing.Router
	ownsData *pgxpool.Pool
}

// New builds the service. It opens no connection yet.
func New(cfg Config, d Deps) (*Service, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Log == nil || d.Meta == nil || d.Authorize == nil {
		return nil, errors.New("lds: Log, Meta and Authorize are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Service{cfg: cfg, log: d.Log, auth: d.Authorize, quotas: &quotas{meta: d.Meta, now: d.Now, defaults: map[string]int64{
		ServiceGeocoding: cfg.GeocodingQuota, ServiceRouting: cfg.RoutingQuota, ServiceIsolines: cfg.IsolinesQuota,
	}}}
	data := d.Data
	if data == nil && cfg.DatabaseURL != "" {
		pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("lds database_url: %w", err)
		}
		pc.MaxConns = cfg.MaxConns
		pc.ConnConfig.RuntimeParams["application_name"] = "meridian-lds"
		pc.AfterConnect = geocode.AfterConnect
		if data, err = pgxpool.NewWithConfig(context.Background(), pc); err != nil {
			return nil, fmt.Errorf("lds: opening the data database: %w", err)
		}
		s.ownsData = data
	}
	if data != nil {
		s.geo = geocode.New(data)
		s.router = routing.New(data)
	}
	return s, nil
}

// Close closes the pool New opened, if any.
func (s *Service) Close() {
	if s.ownsData != nil {
		s.ownsData.Close()
	}
}

// Register adds the routes to mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v3/lds/geocoding/geocode", s.handle(ServiceGeocoding, s.geocode))
	mux.HandleFunc("POST /api/v3/lds/geocoding/geocode", s.handle(ServiceGeocoding, s.geocode))
	mux.HandleFunc("GET /api/v3/lds/geocoding/reverse", s.handle(ServiceGeocoding, s.reverse))
	mux.HandleFunc("POST /api/v3/lds/geocoding/batch", s.handle(ServiceGeocoding, s.batch))
	mux.HandleFunc("GET /api/v3/lds/routing", s.handle(ServiceRouting, s.route))
	mux.HandleFunc("GET /api/v3/lds/routing/matrix", s.handle(ServiceRouting, s.matrix))
	mux.HandleFunc("GET /api/v3/lds/isolines", s.handle(ServiceIsolines, s.isolines))
	mux.HandleFunc("GET /api/v3/lds/isolines/h3", s.handle(ServiceIsolines, s.isolinesH3))
	mux.HandleFunc("GET /api/v3/lds/stats", s.handle("", s.stats))
}

// apiError is a request error: Msg to the client, Err to the logs.
type apiError struct {
	Status int
	Code   string
	Msg    string
	Err    error
}

func (e apiError) Error() string { return e.Msg }

func badRequest(format string, args ...any) apiError {
	return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: fmt.Sprintf(format, args...)}
}

// unsupported is CARTO's answer for an operation no engine serves.
func unsupported(what string) apiError {
	return apiError{Status: http.StatusBadRequest, Code: "UNSUPPORTED_PROVIDER", Msg: "Unsupported provider: no engine serves " + what}
}

// call is one authorized request.
type call struct {
	org string
}

func (s *Service) handle(service string, fn func(w http.ResponseWriter, r *http.Request, c call) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		org, ok := s.auth(w, r)
		if !ok {
			return
		}
		if org == "" {
			org = DefaultOrg
		}
		var err error
		if service != "" && s.geo == nil {
			err = unsupported(service + " (no LDS database is configured: MERIDIAN_LDS_DATABASE_URL)")
		} else {
			err = fn(w, r, call{org: org})
		}
		if err == nil {
			return
		}
		var ae apiError
		var eq errQuota
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &eq):
			ae = apiError{Status: http.StatusTooManyRequests, Code: "QUOTA_EXCEEDED", Msg: eq.Error()}
		case errors.Is(err, context.DeadlineExceeded):
			ae = apiError{Status: http.StatusGatewayTimeout, Code: "TIMEOUT", Msg: "the request took too long", Err: err}
		default:
			ae = apiError{Status: http.StatusInternalServerError, Code: "INTERNAL", Msg: "internal error", Err: err}
		}
		if ae.Status >= 500 {
			s.log.LogAttrs(r.Context(), slog.LevelError, "lds request failed", slog.String("path", r.URL.Path),
				slog.Int("status", ae.Status), slog.Any("err", ae.Err))
		}
		writeJSON(w, ae.Status, map[string]any{"error": ae.Msg, "status": ae.Status, "code": ae.Code})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// entry is one {error, value} of an answer.
type entry struct {
	Error *string `json:"error"`
	Value any     `json:"value"`
}

func ok(v any) entry { return entry{Value: v} }

func failed(err error) entry {
	msg := err.Error()
	return entry{Error: &msg}
}

// inputError reports whether err is the caller's (a bad or unanswerable
// input) rather than the server's.
func inputError(err error) bool {
	for _, e := range []error{geocode.ErrEmptyAddress, geocode.ErrAddressTooLong, geocode.ErrAbsurdAddress,
		geocode.ErrUnknownCountry, geocode.ErrBadCoordinates, geocode.ErrNothingNear,
		routing.ErrUnsupportedMode, routing.ErrBadCoordinates, routing.ErrNoRegion, routing.ErrNoRoad,
		routing.ErrUnreachable, routing.ErrBadRange, routing.ErrTooManyCells} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// params reads a request's parameters: the URL query, and for a JSON
// POST the body's top-level string/number fields.
func params(r *http.Request) (map[string]string, error) {
	p := map[string]string{}
	for k, v := range r.URL.Query() {
		p[k] = v[0]
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			return nil, badRequest("the body is not a JSON object: %v", err)
		}
		for k, v := range body {
			switch v := v.(type) {
			case string:
				p[k] = v
			case float64:
				p[k] = strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
	}
	return p, nil
}

func (s *Service) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.Timeout.D())
}

func parseLimit(v string) (int, error) {
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10 {
		return 0, badRequest("limit must be an integer from 1 to 10")
	}
	return n, nil
}

func (s *Service) geocode(w http.ResponseWriter, r *http.Request, c call) error {
	p, err := params(r)
	if err != nil {
		return err
	}
	addr, err := geocode.Validate(p["address"])
	if err != nil {
		return badRequest("address: %v", err)
	}
	limit, err := parseLimit(p["limit"])
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if p["country"] != "" {
		if _, err := s.geo.CountryCode(ctx, p["country"]); err != nil {
			if errors.Is(err, geocode.ErrUnknownCountry) {
				return badRequest("country %q: %v", p["country"], err)
			}
			return err
		}
	}
	if err := s.quotas.charge(ctx, c.org, ServiceGeocoding, 1); err != nil {
		return err
	}
	rs, err := s.geo.Geocode(ctx, geocode.Query{Address: addr, Country: p["country"], Limit: limit})
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []geocode.Result{}
	}
	writeJSON(w, http.StatusOK, []entry{ok(rs)})
	return nil
}

// parseFloat reads a required number parameter.
func parseFloat(p map[string]string, name string) (float64, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return 0, badRequest("%s is required", name)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, badRequest("%s must be a number", name)
	}
	return f, nil
}

func (s *Service) reverse(w http.ResponseWriter, r *http.Request, c call) error {
	p, err := params(r)
	if err != nil {
		return err
	}
	lat, err := parseFloat(p, "lat")
	if err != nil {
		return err
	}
	lon, err := parseFloat(p, "lon")
	if err != nil {
		return err
	}
	if lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return badRequest("lat/lon: %v", geocode.ErrBadCoordinates)
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.quotas.charge(ctx, c.org, ServiceGeocoding, 1); err != nil {
		return err
	}
	res, err := s.geo.Reverse(ctx, lat, lon)
	switch {
	case errors.Is(err, geocode.ErrNothingNear):
		writeJSON(w, http.StatusOK, []entry{failed(err)})
		return nil
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, []entry{ok([]geocode.Result{res})})
	return nil
}

// batchItem is one address of a batch: a string, or an object with
// address, country and limit.
type batchItem struct {
	Address string `json:"address"`
	Country string `json:"country"`
	Limit   int    `json:"limit"`
}

// batch geocodes up to MaxBatch addresses. The body is
// {"addresses": [...], "country"?: "US", "limit"?: 1} or a bare array;
// each address a string or {address, country, limit}. The answer is one
// {error, value} per address in input order, written as they are done
// (flushed every chunk), so the server never holds the whole answer.
func (s *Service) batch(w http.ResponseWriter, r *http.Request, c call) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(MaxBatch)*(geocode.MaxAddressLen+64)+4096))
	if err != nil {
		return badRequest("reading the body: %v", err)
	}
	var raw []json.RawMessage
	defCountry, defLimit := "", 1
	if t := strings.TrimSpace(string(body)); strings.HasPrefix(t, "[") {
		err = json.Unmarshal(body, &raw)
	} else {
		var env struct {
			Addresses []json.RawMessage `json:"addresses"`
			Country   string            `json:"country"`
			Limit     int               `json:"limit"`
		}
		err = json.Unmarshal(body, &env)
		raw, defCountry = env.Addresses, env.Country
		if env.Limit > 0 {
			defLimit = env.Limit
		}
	}
	body = nil
	if err != nil {
		return badRequest("the body must be {\"addresses\": [...]} or a JSON array: %v", err)
	}
	if len(raw) == 0 {
		return badRequest("the batch has no addresses")
	}
	if len(raw) > MaxBatch {
		return badRequest("the batch has %d addresses; at most %d are allowed", len(raw), MaxBatch)
	}
	if defLimit > 10 {
		return badRequest("limit must be an integer from 1 to 10")
	}
	if err := s.quotas.charge(r.Context(), c.org, ServiceGeocoding, int64(len(raw))); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	io.WriteString(w, "[")
	// Workers take entries as they come free; the writer answers them in
	// input order. At most window entries are in flight or waiting to be
	// written, so memory stays flat whatever the batch size, and a slow
	// entry holds up only the writer, never the other workers.
	const window = 256
	ctx := r.Context()
	type job struct {
		i   int
		out chan entry
	}
	jobs := make(chan job)
	order := make(chan chan entry, window)
	go func() {
		defer close(order)
		defer close(jobs)
		for i := range raw {
			out := make(chan entry, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{i, out}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range min(s.cfg.BatchWorkers, len(raw)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.out <- s.batchOne(ctx, raw[j.i], defCountry, defLimit)
				raw[j.i] = nil
			}
		}()
	}
	defer wg.Wait()
	i := 0
	for out := range order {
		var e entry
		select {
		case e = <-out:
		case <-ctx.Done():
			return nil
		}
		if i > 0 {
			io.WriteString(w, ",")
		}
		b, _ := json.Marshal(e)
		w.Write(b)
		if i++; i%64 == 0 {
			rc.Flush()
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	io.WriteString(w, "]\n")
	return nil
}

func (s *Service) batchOne(ctx context.Context, raw json.RawMessage, defCountry string, defLimit int) entry {
	it := batchItem{Country: defCountry, Limit: defLimit}
	if err := json.Unmarshal(raw, &it.Address); err != nil {
		if err := json.Unmarshal(raw, &it); err != nil {
			return failed(errors.New("an entry must be an address string or {\"address\": …}"))
		}
	}
	if it.Limit < 1 || it.Limit > 10 {
		return failed(errors.New("limit must be an integer from 1 to 10"))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout.D())
	defer cancel()
	rs, err := s.geo.Geocode(ctx, geocode.Query{Address: it.Address, Country: it.Country, Limit: it.Limit})
	if err != nil {
		if !inputError(err) {
			s.log.Error("lds batch entry failed", "err", err)
			err = errors.New("internal error")
		}
		return failed(err)
	}
	if rs == nil {
		rs = []geocode.Result{}
	}
	return ok(rs)
}

// parseLonLat reads "lon,lat".
func parseLonLat(s, name string) (routing.Point, error) {
	a, b, found := strings.Cut(strings.TrimSpace(s), ",")
	if s == "" {
		return routing.Point{}, badRequest("%s is required (lon,lat)", name)
	}
	lon, e1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lat, e2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	p := routing.Point{Lon: lon, Lat: lat}
	if !found || e1 != nil || e2 != nil || !p.Valid() {
		return routing.Point{}, badRequest("%s must be lon,lat with longitude -180..180 and latitude -90..90, got %q", name, s)
	}
	return p, nil
}

// parseWaypoints reads CARTO's waypoints: "lat,lon" pairs separated by
// ';' or '|' (CARTO_API.md §12 leaves the separator open).
func parseWaypoints(s string) ([]routing.Point, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []routing.Point
	for _, pair := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '|' }) {
		a, b, found := strings.Cut(pair, ",")
		lat, e1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
		lon, e2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
		p := routing.Point{Lon: lon, Lat: lat}
		if !found || e1 != nil || e2 != nil || !p.Valid() {
			return nil, badRequest("waypoints must be lat,lon pairs separated by ';', got %q", pair)
		}
		out = append(out, p)
	}
	if len(out) > routing.MaxWaypoints {
		return nil, badRequest("at most %d waypoints", routing.MaxWaypoints)
	}
	return out, nil
}

func (s *Service) mode(p map[string]string, what string) (routing.Mode, error) {
	m, err := routing.ParseMode(p["mode"])
	if err != nil {
		return "", unsupported(fmt.Sprintf("%s with mode %q (car, walk)", what, p["mode"]))
	}
	return m, nil
}

func (s *Service) route(w http.ResponseWriter, r *http.Request, c call) error {
	p, err := params(r)
	if err != nil {
		return err
	}
	origin, err := parseLonLat(p["origin"], "origin")
	if err != nil {
		return err
	}
	dest, err := parseLonLat(p["destination"], "destination")
	if err != nil {
		return err
	}
	wps, err := parseWaypoints(p["waypoints"])
	if err != nil {
		return err
	}
	mode, err := s.mode(p, "routing")
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.quotas.charge(ctx, c.org, ServiceRouting, 1); err != nil {
		return err
	}
	rt, err := s.router.Route(ctx, origin, dest, wps, mode)
	if inputError(err) {
		writeJSON(w, http.StatusOK, []entry{failed(err)})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, []entry{ok(map[string]any{"distance": rt.Distance, "duration": rt.Duration, "geom": rt.Geom,
		"mode": mode, "provider": geocode.Provider})})
	return nil
}

func parsePoints(s, name string) ([]routing.Point, error) {
	var out []routing.Point
	for _, pair := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '|' }) {
		pt, err := parseLonLat(pair, name)
		if err != nil {
			return nil, err
		}
		out = append(out, pt)
	}
	if len(out) == 0 || len(out) > 25 {
		return nil, badRequest("%s must be 1 to 25 lon,lat pairs separated by ';'", name)
	}
	return out, nil
}

// matrix answers travel times between origins and destinations
// (pgr_dijkstraCostMatrix); each pair counts as one routing use.
func (s *Service) matrix(w http.ResponseWriter, r *http.Request, c call) error {
	p, err := params(r)
	if err != nil {
		return err
	}
	origins, err := parsePoints(p["origins"], "origins")
	if err != nil {
		return err
	}
	dests, err := parsePoints(p["destinations"], "destinations")
	if err != nil {
		return err
	}
	mode, err := s.mode(p, "routing")
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.quotas.charge(ctx, c.org, ServiceRouting, int64(len(origins)*len(dests))); err != nil {
		return err
	}
	m, err := s.router.Matrix(ctx, origins, dests, mode)
	if inputError(err) {
		writeJSON(w, http.StatusOK, []entry{failed(err)})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, []entry{ok(map[string]any{"durations": m, "mode": mode})})
	return nil
}

func (s *Service) isolineParams(p map[string]string) (routing.Point, routing.Mode, []float64, routing.RangeType, error) {
	origin, err := parseLonLat(p["origin"], "origin")
	if err != nil {
		return routing.Point{}, "", nil, "", err
	}
	mode, err := s.mode(p, "isolines")
	if err != nil {
		return routing.Point{}, "", nil, "", err
	}
	rt := routing.RangeType(strings.ToLower(p["range_type"]))
	if rt == "" {
		rt = routing.Time
	}
	if rt != routing.Time && rt != routing.Distance {
		return routing.Point{}, "", nil, "", badRequest("range_type must be time or distance")
	}
	var ranges []float64
	for _, v := range strings.Split(p["range"], ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return routing.Point{}, "", nil, "", badRequest("range must be numbers separated by commas, got %q", p["range"])
		}
		ranges = append(ranges, f)
	}
	if err := routing.CheckRanges(ranges, rt); err != nil {
		return routing.Point{}, "", nil, "", badRequest("range: %v", err)
	}
	return origin, mode, ranges, rt, nil
}

func (s *Service) isolines(w http.ResponseWriter, r *http.Request, c call) error {
	p, err := params(r)
	if err != nil {
		return err
	}
	origin, mode, ranges, rt, err := s.isolineParams(p)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.quotas.charge(ctx, c.org, ServiceIsolines, 1); err != nil {
		return err
	}
	iso, err := s.router.Isolines(ctx, origin, mode, ranges, rt)
	if inputError(err) {
		writeJSON(w, http.StatusOK, []entry{failed(err)})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, []entry{ok(iso)})
	return nil
}

// isolinesH3 answers the isolines as H3 cells (resolution, default
// routing.DefaultH3Res): the cells whose centres each range's polygon
// covers, each range holding the smaller ones' cells.
func (s *Service) isolinesH3(w http.ResponseWriter, r *http.Request, c call) error {
	p, err := params(r)
	if err != nil {
		return err
	}
	origin, mode, ranges, rt, err := s.isolineParams(p)
	if err != nil {
		return err
	}
	res := routing.DefaultH3Res
	if v, ok := p["resolution"]; ok {
		if res, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || res < routing.MinH3Res || res > routing.MaxH3Res {
			return badRequest("%v, got %q", routing.ErrBadResolution, v)
		}
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.quotas.charge(ctx, c.org, ServiceIsolines, 1); err != nil {
		return err
	}
	iso, err := s.router.Isolines(ctx, origin, mode, ranges, rt)
	var cells []routing.CellIsoline
	if err == nil {
		cells, err = routing.IsolineCells(origin, iso, res)
	}
	if errors.Is(err, routing.ErrNoH3) {
		return unsupported("isolines as H3 cells (" + err.Error() + ")")
	}
	if inputError(err) {
		writeJSON(w, http.StatusOK, []entry{failed(err)})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, []entry{ok(cells)})
	return nil
}

func (s *Service) stats(w http.ResponseWriter, r *http.Request, c call) error {
	ctx, cancel := s.ctx(r)
	defer cancel()
	out := []map[string]any{}
	for _, svc := range services {
		limit, err := s.quotas.limit(ctx, c.org, svc)
		if err != nil {
			return err
		}
		used, err := s.quotas.used(ctx, c.org, svc)
		if err != nil {
			return err
		}
		provider := geocode.Provider
		if s.geo == nil {
			provider = ""
		}
		out = append(out, map[string]any{"service": svc, "monthly_quota": limit, "used_quota": used,
			"remaining_quota": max(0, limit-used), "provider": provider})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
