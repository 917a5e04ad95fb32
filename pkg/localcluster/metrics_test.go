package localcluster

import (
	"fmt"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeMetrics fetches and parses a process's /metrics.
func scrapeMetrics(addr string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", addr, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// seriesValue sums the values (histograms: sample counts) of family name's
// series that carry the given label pairs; found is false with no such series.
func seriesValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, found bool) {
next:
	for _, m := range fams[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, lp := range m.GetLabel() {
				ok = ok || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		}
	}
	return v, found
}

// workerHTTP is the /metrics address of the cluster's worker named name.
func (c *Cluster) workerHTTP(t *testing.T, name string) string {
	t.Helper()
	for i, p := range c.Workers {
		if p.Name == name {
			return c.WorkerHTTP[i]
		}
	}
	t.Fatalf("no worker %q", name)
	return ""
}
