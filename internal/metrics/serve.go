package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aimwan/aimwan/internal/accept"
	"github.com/aimwan/aimwan/internal/netaddr"
)

// shutdownGrace bounds how long ServeMetrics waits for in-flight scrapes.
const shutdownGrace = 2 * time.Second

// MaxHTTPConns caps the connections of each small HTTP endpoint (metrics,
// control): scrapers and the command line use a few.
const MaxHTTPConns = 32

// ServeMetrics serves the metrics of g in the Prometheus text format at
// /metrics on addr (host:port) until ctx ends, then returns nil. It logs a
// warning when addr is not a loopback address, since metrics are meant to stay
// on the host unless the operator says otherwise. An empty addr or "off"
// disables serving: ServeMetrics then just waits for ctx. log nil means
// slog.Default().
func ServeMetrics(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if g == nil {
		return errors.New("serve metrics: nil gatherer")
	}
	if addr == "" || addr == "off" {
		<-ctx.Done()
		return nil
	}
	ln, err := Listen(addr, log)
	if err != nil {
		return err
	}
	return ServeMetricsListener(ctx, ln, g, log)
}

// Listen binds the metrics address addr (host:port) for ServeMetricsListener,
// for a daemon that binds its listeners before it serves. It logs a warning
// when addr is not a loopback address, since metrics are meant to stay on the
// host unless the operator says otherwise. log nil means slog.Default().
func Listen(addr string, log *slog.Logger) (net.Listener, error) {
	if log == nil {
		log = slog.Default()
	}
	if !netaddr.IsLoopback(addr) {
		log.Warn("metrics served on a non-loopback address; anyone who can reach it can read them", "addr", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics on %s: %w", addr, err)
	}
	return ln, nil
}

// ServeMetricsListener is ServeMetrics on a listener the caller opened (tests
// use 127.0.0.1:0). It closes ln and returns nil when ctx ends. Beside g's
// metrics it serves the process-wide ones of RuntimeGatherer (go_*,
// process_*, aimwan_build_info).
func ServeMetricsListener(ctx context.Context, ln net.Listener, g prometheus.Gatherer, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if g == nil {
		ln.Close()
		return errors.New("serve metrics: nil gatherer")
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{g, RuntimeGatherer()}, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{log},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	log.Info("serving metrics", "addr", ln.Addr().String())
	return ServeHTTP(ctx, ln, mux, "serve metrics on", log)
}

// ServeHTTP serves h on ln until ctx ends, then shuts the server down (in-flight
// requests get shutdownGrace to finish) and returns nil; what prefixes errors
// ("serve metrics on" -> "serve metrics on 127.0.0.1:9100: ..."). The daemons'
// small HTTP endpoints (metrics, control) share it: at most MaxHTTPConns
// connections at once (more are closed at once), temporary accept errors
// retried (internal/accept), headers within 10s, idle connections closed
// after a minute.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler, what string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	limited := accept.Limit(ln, accept.Config{Name: what + " " + ln.Addr().String(), MaxConns: MaxHTTPConns, Logger: log})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(limited) }()
	select {
	case err := <-done:
		return fmt.Errorf("%s %s: %w", what, ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s %s: %w", what, ln.Addr(), err)
	}
	return nil
}

// slogPrinter adapts a slog.Logger to promhttp's Logger interface.
type slogPrinter struct{ log *slog.Logger }

var _ promhttp.Logger = slogPrinter{}

// Println logs promhttp's error messages as warnings.
func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics handler: " + fmt.Sprint(v...)) }
