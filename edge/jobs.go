package main

import "github.com/meridian-gis/meridian/workers"

// registerJobs subscribes the worker to the job topics it handles. The
// import, batch SQL and workspace-event handlers register here.
func registerJobs(r *workers.Runner, nd *node) {}
