package blocks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// The open-file budget.
//
// Opening a tenant's TSDB must not be what runs the process out of file
// descriptors: tsdb.Open (Prometheus v0.316.0) leaks the head it built when
// it fails after building it (loading blocks or replaying the WAL fail,
// "too many open files" included). The WAL and WBL segments stay open and
// their goroutines run on, with no handle to close them. A process short of
// files that kept opening tenants would leak a few files at each failed
// opening until it had none left, for good.
//
// So an opening first reserves the files it will hold (fileBudget.reserve):
// it goes ahead only while the process's open files, those reserved by
// openings under way, and its own estimate leave fileMargin files free for
// everything else (connections, cutting and shipping blocks, queries).
// Otherwise it is refused with ErrTooFewFiles (a write is answered 503, and
// retried) before tsdb.Open is called. Idle tenants close and free theirs.

// ErrTooFewFiles is returned (wrapped in ErrTenantUnavailable) for a
// tenant that is not opened because the process has too few free files.
var ErrTooFewFiles = errors.New("too few free file descriptors to open the tenant")

// fileBudget is the file-descriptor accounting of tenant openings.
type fileBudget struct {
	limit  int                 // RLIMIT_NOFILE's soft limit; 0 when unknown
	margin int                 // files kept free for everything else
	count  func() (int, error) // the process's open files
	mu     sync.Mutex
	held   int // files reserved by openings under way
}

// newFileBudget returns the budget of this process. Where the limit or the
// open files cannot be read, every reservation succeeds.
func newFileBudget() *fileBudget {
	var rl syscall.Rlimit
	limit := 0
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 1<<31 {
		limit = int(rl.Cur)
	}
	return &fileBudget{limit: limit, margin: fileMargin(limit), count: countOpenFiles}
}

// fileMargin is the files kept free for everything but tenant openings: a
// thirty-second of the limit, at least 32 and at most 4096.
func fileMargin(limit int) int { return min(max(limit/32, 32), 4096) }

// countOpenFiles counts the process's open file descriptors.
func countOpenFiles() (int, error) {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	return len(names) - 1, nil // less the descriptor reading the directory
}

// reserve reserves n files for an opening; release gives them back once the
// opening is over (its files are then among the open ones). It fails with
// ErrTooFewFiles when the reservation would leave less than the margin free.
func (b *fileBudget) reserve(n int) (release func(), err error) {
	if b.limit <= 0 {
		return func() {}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	open, err := b.count()
	if err != nil {
		return func() {}, nil // not measurable here: as if unlimited
	}
	if free := b.limit - open - b.held; free-n < b.margin {
		return nil, fmt.Errorf("%w: %d of %d open, %d reserved by openings under way, %d needed and %d kept free for the rest",
			ErrTooFewFiles, open, b.limit, b.held, n, b.margin)
	}
	b.held += n
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.held -= n
			b.mu.Unlock()
		})
	}, nil
}

// tenantFiles estimates the files the TSDB in dir holds once open: its
// lock, WAL and WBL segments and head-chunks directory, its head-chunk
// files, and an index and a chunk segment per block, plus what opening
// reads on the way (directories, WAL segments being replayed).
func tenantFiles(dir string) int {
	const fixed = 8
	n := fixed
	if ents, err := os.ReadDir(filepath.Join(dir, "chunks_head")); err == nil {
		n += len(ents)
	}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if e.IsDir() && len(e.Name()) == 26 { // a block, named by its ULID
				n += 2
			}
		}
	}
	return n
}
