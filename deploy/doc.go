// Package deploy holds the files the docker compose stack of the
// repository's docker-compose.yml mounts (Strata's configuration and rule
// files, Prometheus's and Alertmanager's configuration, Grafana's
// provisioning and dashboard), and the tests that prove them:
//
//   - TestComposeConsistency parses docker-compose.yml (with compose-go, the
//     library `docker compose config` is built on), the Dockerfile and every
//     mounted file, and checks that URLs, ports, bucket, credentials, plugin
//     id and mounted paths agree across them, and that Strata's
//     configuration passes `strata -config.check`;
//   - TestStackLive starts the same programs as local processes (Strata built
//     from this tree, MinIO, Prometheus 3, node exporter, Alertmanager) with
//     the very same files, host names and ports rewritten to free local
//     ones, and checks that samples flow from node exporter through
//     Prometheus into Strata and the MinIO bucket, that the anomaly rules
//     write their series, that alerts reach the webhook receiver through
//     Alertmanager and directly, and that the dashboard's queries answer.
//
// docker-compose.cluster.yml is the same around a cluster (the files in
// strata-cluster/, prometheus-cluster/ and grafana-cluster/):
// TestClusterComposeConsistency and TestClusterStackLive check and run it
// the same way.
//
// Without a Docker engine these are how the stacks are tested.
package deploy
