package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stellwerk/stellwerk/internal/flow"
)

// Routes reads the named routes' counters (flow.Counters: per route,
// version and split arm) at each scrape, the live version of each route,
// and the live versions that do not load under the config in force.
// Cardinality is the routes' versions that served since start, times
// their arms, times at most three served values (target, fallback, none:
// bounded, where a model label would multiply by the models a fallback
// reaches).
func Routes(rows func() []flow.CounterRow, live, broken func() map[string]int64) prometheus.Collector {
	labels := []string{"route", "version", "arm", "served"}
	requests := prometheus.NewDesc("stellwerk_route_requests_total", "Requests that took a named route, by route, version, split arm (node/arm, \"\" when none) and served: target (a target of the route was sent), fallback (none could serve; chosen as for auto) or none (no model chosen).", labels, nil)
	errs := prometheus.NewDesc("stellwerk_route_errors_total", "Requests of a named route answered with an error (a refusal, a provider error, every attempt failed).", labels, nil)
	cost := prometheus.NewDesc("stellwerk_route_cost_eur_total", "What a named route's requests cost, in EUR.", labels, nil)
	lat := prometheus.NewDesc("stellwerk_route_duration_seconds", "Time from a named route's request to the end of its answer.", labels, nil)
	version := prometheus.NewDesc("stellwerk_route_live_version", "The live version of each named route.", []string{"route"}, nil)
	brokenDesc := prometheus.NewDesc("stellwerk_route_broken", "1 for a named route whose live version does not load under the config in force (it answers 503 route_unavailable, or serves its last good version until the process restarts).", []string{"route", "version"}, nil)
	bounds := make([]float64, len(flow.LatencyBuckets))
	for i, b := range flow.LatencyBuckets {
		bounds[i] = b.Seconds()
	}
	return &funcCollector{descs: []*prometheus.Desc{requests, errs, cost, lat, version, brokenDesc}, collect: func(ch chan<- prometheus.Metric) {
		for _, r := range rows() {
			v := []string{r.Route, strconv.FormatInt(r.Version, 10), r.Arm, r.Served}
			ch <- prometheus.MustNewConstMetric(requests, prometheus.CounterValue, float64(r.Requests), v...)
			ch <- prometheus.MustNewConstMetric(errs, prometheus.CounterValue, float64(r.Errors), v...)
			ch <- prometheus.MustNewConstMetric(cost, prometheus.CounterValue, r.Cost.EUR(), v...)
			buckets := make(map[float64]uint64, len(bounds))
			var cum uint64
			for i, ub := range bounds {
				cum += uint64(r.Buckets[i])
				buckets[ub] = cum
			}
			ch <- prometheus.MustNewConstHistogram(lat, uint64(r.Requests), r.LatencySum.Seconds(), buckets, v...)
		}
		for name, v := range live() {
			ch <- prometheus.MustNewConstMetric(version, prometheus.GaugeValue, float64(v), name)
		}
		for name, v := range broken() {
			ch <- prometheus.MustNewConstMetric(brokenDesc, prometheus.GaugeValue, 1, name, strconv.FormatInt(v, 10))
		}
	}}
}
