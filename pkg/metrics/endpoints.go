package metrics

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewPeakRSS is the ProcessPeakRSS gauge, read from peak (sysmem.PeakRSS)
// at every scrape.
func NewPeakRSS(peak func() (int64, bool)) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: ProcessPeakRSS,
		Help: "Most resident memory this process has held since it started (bytes).",
	}, func() float64 { b, _ := peak(); return float64(b) })
}

// Endpoints adds a process's operations endpoints to mux: /metrics (g's
// series), /healthz (the process answers) and /readyz (ready returns nil;
// otherwise 503 with its error, which should say what is missing).
func Endpoints(mux *http.ServeMux, g prometheus.Gatherer, ready func() error) {
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
}

// ListenAndServe serves hs until it is closed or shut down, which is not an
// error; any other failure is returned wrapped.
func ListenAndServe(hs *http.Server) error {
	if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	return nil
}
