package scenarios

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/internal/pgcluster"
)

// startScratchCluster starts a private, fast (fsync off) PostgreSQL
// cluster in the scenario's TempDir and registers its stop on stop. No
// server binaries skip the scenario.
func startScratchCluster(ctx context.Context, env *bench.Env, stop *cleanup) (*pgcluster.Cluster, error) {
	// The cluster runs as the postgres user when we are root: it must be
	// able to enter the scratch folder.
	if err := os.Chmod(env.TempDir, 0o755); err != nil {
		return nil, fmt.Errorf("opening scratch dir: %w", err)
	}
	cluster, err := pgcluster.Open(ctx, filepath.Join(env.TempDir, "pg"), pgcluster.Options{Fast: true})
	if errors.Is(err, pgcluster.ErrNoBinaries) {
		return nil, bench.Skip("no PostgreSQL server binaries")
	}
	if err != nil {
		return nil, err
	}
	// pg_ctl stop is a no-op when no server runs, so it is registered
	// before the start.
	stop.add(cluster.Stop)
	if err := cluster.Start(ctx); err != nil {
		return nil, err
	}
	return cluster, nil
}
