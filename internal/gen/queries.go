package gen

import "time"

// Queries is the fixed query set over node-exporter series, run as range
// queries: rates, aggregations by label, topk, regex selectors, a binary
// operation and count by (__name__) over every series.
var Queries = []string{
	`rate(node_network_receive_bytes_total[5m])`,
	`sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))`,
	`avg by (mode) (rate(node_cpu_seconds_total[5m]))`,
	`topk(5, rate(node_disk_written_bytes_total[5m]))`,
	`sum by (device) (rate(node_disk_read_bytes_total{device=~"nvme.*"}[5m]))`,
	`max by (instance) (1 - node_filesystem_avail_bytes{mountpoint=~"/|/var"} / node_filesystem_size_bytes{mountpoint=~"/|/var"})`,
	`quantile(0.9, node_load5)`,
	`sum(rate(node_context_switches_total[5m]))`,
	`count by (__name__) ({job="node"})`,
}

// QueryStep is the resolution of the range queries of Queries.
const QueryStep = time.Minute
