// Package bucket is `strata tools bucket`: listing, inspecting and
// verifying the blocks Strata keeps in its bucket.
//
//	strata tools bucket ls      [bucket flags] [-tenant ID]
//	strata tools bucket inspect [bucket flags] -tenant ID BLOCK
//	strata tools bucket verify  [bucket flags] [-tenant ID]
//
// The bucket flags are the server's (-bucket.*, -storage.path for the
// default filesystem bucket).
package bucket

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/blocks/bucketcodec"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/objstore"
)

const usage = `usage: strata tools bucket ls|inspect|verify [flags]

  ls       list every block: tenant, ULID, time range, resolution, level,
           series and samples, source, and whether it is marked for deletion
  inspect  print one block's meta.json and objects (-tenant ID BLOCK)
  verify   check the bucket's integrity; exits 1 when it finds a problem
`

// Command runs `strata tools bucket` with args and returns the exit code.
func Command(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("strata tools bucket "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg objstore.Config
	cfg.RegisterFlags(fs)
	dataDir := fs.String("storage.path", "./data", "Data directory; the default filesystem bucket is <storage.path>/bucket.")
	tenantID := fs.String("tenant", "", "Only this tenant.")
	blockDuration := fs.Duration("storage.block-duration", 2*time.Hour, "The server's block duration, which sets the compactor's windows (verify).")
	delay := fs.Duration("compactor.compaction-delay", 4*time.Hour, "The server's compaction delay (verify).")
	lim := limits.Defaults()
	ret := compactor.Retention{Raw: time.Duration(lim.RetentionRaw), Res1m: time.Duration(lim.Retention1m), Res1h: time.Duration(lim.Retention1h)}
	fs.DurationVar(&ret.Raw, "limits.retention-raw", ret.Raw, "Raw data's retention (verify: resolutions that must hold older data).")
	fs.DurationVar(&ret.Res1m, "limits.retention-1m", ret.Res1m, "1m data's retention (verify).")
	fs.DurationVar(&ret.Res1h, "limits.retention-1h", ret.Res1h, "1h data's retention (verify).")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx := context.Background()
	bkt, err := objstore.New(ctx, cfg, filepath.Join(*dataDir, "bucket"), nil, nil)
	if err != nil {
		fmt.Fprintln(stderr, "strata tools bucket:", err)
		return 1
	}
	defer bkt.Close()
	switch sub {
	case "ls":
		err = List(ctx, bkt, *tenantID, stdout)
	case "inspect":
		if *tenantID == "" || fs.NArg() != 1 {
			fmt.Fprintln(stderr, "inspect needs -tenant ID and one block ULID")
			return 2
		}
		err = Inspect(ctx, bkt, *tenantID, fs.Arg(0), stdout)
	case "verify":
		var problems []string
		levels, lerr := compactor.LevelsFor(*blockDuration)
		if lerr != nil {
			fmt.Fprintln(stderr, "strata tools bucket:", lerr)
			return 2
		}
		problems, err = Verify(ctx, bkt, *tenantID, VerifyOptions{Levels: levels, CompactionDelay: *delay, Retention: ret, Now: time.Now()})
		for _, p := range problems {
			fmt.Fprintln(stdout, "PROBLEM:", p)
		}
		if err == nil && len(problems) > 0 {
			return 1
		}
		if err == nil {
			fmt.Fprintln(stdout, "bucket OK")
		}
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "strata tools bucket:", err)
		return 1
	}
	return 0
}

func tenants(ctx context.Context, bkt objstore.Bucket, only string) ([]string, error) {
	if only != "" {
		return []string{only}, nil
	}
	return compactor.Tenants(ctx, bkt)
}

func resolution(m *blockmeta.Meta) string {
	if m.Resolution() == 0 {
		return "raw"
	}
	return (time.Duration(m.Resolution()) * time.Millisecond).String()
}

func ts(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// List writes every block of the tenants (all when only is empty).
func List(ctx context.Context, bkt objstore.Bucket, only string, w io.Writer) error {
	ids, err := tenants(ctx, bkt, only)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tULID\tFROM\tUNTIL\tRANGE\tRES\tLEVEL\tSERIES\tSAMPLES\tSOURCE\tSTATE")
	for _, id := range ids {
		inv, err := compactor.LoadInventory(ctx, bkt, id)
		if err != nil {
			return err
		}
		type row struct {
			m     *blockmeta.Meta
			state string
		}
		var rows []row
		for _, m := range inv.Live {
			rows = append(rows, row{m, "live"})
		}
		for u, m := range inv.MarkedMeta {
			rows = append(rows, row{m, "marked " + time.Unix(inv.Marks[u].DeletionTime, 0).UTC().Format(time.RFC3339)})
		}
		sort.Slice(rows, func(i, j int) bool {
			if rows[i].m.MinTime != rows[j].m.MinTime {
				return rows[i].m.MinTime < rows[j].m.MinTime
			}
			return rows[i].m.Resolution() < rows[j].m.Resolution()
		})
		for _, r := range rows {
			m := r.m
			src := ""
			if m.Strata != nil {
				src = m.Strata.Source
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", id, m.ULID, ts(m.MinTime), ts(m.MaxTime),
				time.Duration(m.MaxTime-m.MinTime)*time.Millisecond, resolution(m), m.Compaction.Level,
				m.Stats.NumSeries, m.Stats.NumSamples, src, r.state)
		}
		for u := range inv.Partial {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\t\t\t\tpartial upload (no meta.json)\n", id, u)
		}
	}
	return tw.Flush()
}

// Inspect writes one block's metadata and objects.
func Inspect(ctx context.Context, bkt objstore.Bucket, tenantID, block string, w io.Writer) error {
	id, err := ulid.Parse(block)
	if err != nil {
		return fmt.Errorf("invalid block ULID %q: %w", block, err)
	}
	m, err := blockmeta.Read(ctx, bkt, tenantID, id)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	fmt.Fprintf(w, "%s\n\nobjects:\n", b)
	prefix := path.Join(tenantID, id.String()) + "/"
	return bkt.Iter(ctx, prefix, func(name string) error {
		a, err := bkt.Attributes(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-40s %12d bytes  %s\n", strings.TrimPrefix(name, prefix), a.Size, a.LastModified.UTC().Format(time.RFC3339))
		return nil
	}, true)
}

// VerifyOptions are the server settings Verify judges coverage by.
type VerifyOptions struct {
	Levels          []time.Duration // compactor.LevelsFor the block duration
	CompactionDelay time.Duration
	Retention       compactor.Retention
	Now             time.Time
}

// Verify checks every block of the tenants and returns the problems found:
// unreadable metadata, missing index or chunks, partial uploads, blocks of
// one resolution that overlap, a bucket index that disagrees with the
// blocks, and coverage holes: data whose windows are complete that a
// coarser resolution the retention keeps does not hold (compactor.Holes).
// Marked blocks and recent partial uploads are normal and reported only
// when stale.
func Verify(ctx context.Context, bkt objstore.Bucket, only string, o VerifyOptions) ([]string, error) {
	ids, err := tenants(ctx, bkt, only)
	if err != nil {
		return nil, err
	}
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, id := range ids {
		inv, err := compactor.LoadInventory(ctx, bkt, id)
		if err != nil {
			return nil, err
		}
		for u := range inv.Partial {
			if time.Since(ulid.Time(u.Time())) > 6*time.Hour {
				report("%s/%s: abandoned partial upload (no meta.json); the compactor deletes it", id, u)
			}
		}
		var live []*blockmeta.Meta
		for u, m := range inv.Live {
			live = append(live, m)
			if m.MinTime >= m.MaxTime {
				report("%s/%s: empty time range [%d, %d)", id, u, m.MinTime, m.MaxTime)
			}
			prefix := path.Join(id, u.String()) + "/"
			var objects []string
			if err := bkt.Iter(ctx, prefix, func(n string) error {
				objects = append(objects, strings.TrimPrefix(n, prefix))
				return nil
			}, true); err != nil {
				return nil, err
			}
			// Either form: plain (blocks shipped before the bucket form) or encoded.
			for _, f := range []string{"index", "chunks/000001"} {
				if !bucketcodec.HasFile(objects, f) {
					report("%s/%s: missing %s", id, u, f)
				}
			}
		}
		sort.Slice(live, func(i, j int) bool { return live[i].MinTime < live[j].MinTime })
		for i, a := range live {
			for _, b := range live[i+1:] {
				if b.MinTime >= a.MaxTime {
					break
				}
				if a.Resolution() == b.Resolution() {
					report("%s: blocks %s and %s of resolution %s overlap (queries merge them; the compactor will)", id, a.ULID, b.ULID, resolution(a))
				}
			}
		}
		for _, h := range compactor.Holes(inv, o.Levels, o.CompactionDelay, o.Retention, o.Now) {
			var missing []string
			for _, r := range h.Missing {
				missing = append(missing, (time.Duration(r) * time.Millisecond).String())
			}
			report("%s/%s: coverage hole: its %s data [%s, %s) is held by no %s block (the compactor downsamples it on its next run; if this stays, its runs fail)",
				id, h.Block.ULID, resolution(h.Block), ts(h.Block.MinTime), ts(h.Block.MaxTime), strings.Join(missing, " or "))
		}
		ix, err := blockmeta.ReadIndex(ctx, bkt, id)
		switch {
		case bkt.IsNotFound(err):
			// No index yet: queriers list the bucket.
		case err != nil:
			report("%s: unreadable bucket index: %v", id, err)
		default:
			for _, m := range ix.Blocks {
				if _, ok := inv.Live[m.ULID]; !ok {
					if _, marked := inv.Marks[m.ULID]; !marked {
						report("%s: bucket index lists block %s which is not in the bucket", id, m.ULID)
					}
				}
			}
		}
	}
	return problems, nil
}
