package main

import (
	"os"
	"strings"
	"testing"
)

// envRunAsMeridian makes the test binary act as the meridian binary (with
// the arguments in envMeridianArgs, separated by 0x1f), so end-to-end
// tests start real edge processes without a separate build.
const (
	envRunAsMeridian = "MERIDIAN_TEST_RUN_AS_BINARY"
	envMeridianArgs  = "MERIDIAN_TEST_BINARY_ARGS"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRunAsMeridian) == "1" {
		os.Args = append([]string{"meridian"}, strings.Split(os.Getenv(envMeridianArgs), "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
