package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// /readyz says what is missing until ready; /healthz and /metrics answer.
func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ringmaster_test_total", Help: "a test series"})
	reg.MustRegister(c)
	var missing error = errors.New("no leader known")
	mux := http.NewServeMux()
	Endpoints(mux, reg, func() error { return missing })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: no leader known") {
		t.Errorf("/readyz before ready: %d %q", code, body)
	}
	missing = nil
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "ringmaster_test_total 0") {
		t.Errorf("/metrics: %d %q", code, body)
	}
}

// A server that is closed ends without an error; one that cannot listen
// says so.
func TestListenAndServe(t *testing.T) {
	hs := &http.Server{Addr: "127.0.0.1:0"}
	_ = hs.Close() // a closed server's ListenAndServe returns http.ErrServerClosed at once
	if err := ListenAndServe(hs); err != nil {
		t.Fatalf("closed server: %v, want nil", err)
	}
	if err := ListenAndServe(&http.Server{Addr: "256.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "http serve") {
		t.Fatalf("unlistenable address: %v", err)
	}
}
