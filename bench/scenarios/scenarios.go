// Package scenarios holds the bench scenarios Meridian ships and registers
// them in a bench.Registry. Each scenario lives in its own file; add yours
// to Register.
package scenarios

import (
	"errors"
	"fmt"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
)

// Register adds every shipped scenario to r.
func Register(r *bench.Registry) error {
	return errors.Join(
		r.Register(newHTTPFloor),
		r.Register(newWrkVsLoadgen),
		r.Register(newBrokerLatency),
		r.Register(newCacheHit),
		r.Register(newCacheHitH2),
		r.Register(newPurgeTag),
		r.Register(newInvalidation),
		r.Register(newTilesCold),
		r.Register(newTilesWarm),
		r.Register(newImport),
		r.Register(newImportBig),
		r.Register(newSignIn),
		r.Register(newMapPublic),
		r.Register(newLDS),
		r.Register(newSessionHit),
		r.Register(newCacheTests),
	)
}

// Units and metric names shared by the HTTP scenarios.
const (
	unitReqPerSec = "req/s"
	unitMs        = "ms"
)

// fromLoad turns an in-process load run into a bench result: throughput as
// the primary metric; p50, p99 and body MB/s as secondary; errors and
// unexpected statuses as notes. A run without a single response fails.
func fromLoad(res load.Result) (bench.Result, error) {
	if res.Requests == 0 {
		return bench.Result{}, fmt.Errorf("no response in %s (%d errors, first: %s)",
			res.Elapsed, res.Errors, res.FirstError)
	}
	out := bench.Result{
		Primary: bench.Metric{Name: "throughput", Unit: unitReqPerSec, Better: bench.HigherIsBetter, Value: res.Throughput()},
		Secondary: []bench.Metric{
			latencyMetric("p50", res.Latency.Quantile(0.50).Seconds()),
			latencyMetric("p99", res.Latency.Quantile(0.99).Seconds()),
			{Name: "body", Unit: "MB/s", Better: bench.HigherIsBetter, Value: res.BodyRate() / 1e6},
		},
	}
	if res.Errors > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d request errors, first: %s", res.Errors, res.FirstError))
	}
	if n := res.Non2xx3xx(); n > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d responses outside 2xx/3xx", n))
	}
	return out, nil
}

// fromWrk turns a wrk run into a bench result shaped like fromLoad's
// (without the body rate: wrk counts header bytes too).
func fromWrk(res load.WrkResult) (bench.Result, error) {
	if res.Requests == 0 {
		return bench.Result{}, fmt.Errorf("wrk completed no request (%d socket errors)", res.SocketErrors())
	}
	out := bench.Result{
		Primary: bench.Metric{Name: "throughput", Unit: unitReqPerSec, Better: bench.HigherIsBetter, Value: res.RequestsPerSec},
	}
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p99", 0.99}} {
		if d, ok := res.Quantile(q.q); ok {
			out.Secondary = append(out.Secondary, latencyMetric(q.name, d.Seconds()))
		}
	}
	if n := res.SocketErrors(); n > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("wrk socket errors: connect %d, read %d, write %d, timeout %d",
			res.ConnectErrors, res.ReadErrors, res.WriteErrors, res.Timeouts))
	}
	if res.Non2xx3xx > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d responses outside 2xx/3xx", res.Non2xx3xx))
	}
	return out, nil
}

// latencyMetric is a lower-is-better latency in milliseconds.
func latencyMetric(name string, seconds float64) bench.Metric {
	return bench.Metric{Name: name, Unit: unitMs, Better: bench.LowerIsBetter, Value: seconds * 1e3}
}
