package registry

import (
	"log/slog"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

var quietOnce sync.Once

// quietLogs sends distribution's logrus output (warnings and worse) to
// berth's logger at debug level: what it warns of is each client's
// answer (401 challenges clients expect, unknown manifests), which
// berth's callers report themselves. logrus is process-wide; the first
// registry decides.
func quietLogs(log *slog.Logger) {
	quietOnce.Do(func() {
		logrus.SetLevel(logrus.WarnLevel)
		logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableColors: true})
		logrus.SetOutput(slogWriter{log})
	})
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("registry", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}
