package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// sourceFiles lists the files of web/ui that the build reads, as
// web/ui/tools/sources.js does: the top files and src/ except tests.
func sourceFiles(root string) ([]string, error) {
	files := []string{"package.json", "package-lock.json", "webpack.config.js", "tsconfig.json", "tools/sources.js"}
	err := filepath.WalkDir(filepath.Join(root, "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".test.ts") || strings.HasSuffix(p, ".test.tsx") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	sort.Strings(files)
	return files, err
}

// manifest is what the build writes to dist/SOURCES.sha256 for the
// sources under root: "<sha256>  <path>" lines, as sha256sum writes them.
func manifest(root string) (string, error) {
	files, err := sourceFiles(root)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), f)
	}
	return b.String(), nil
}

// TestDistUpToDate fails while the committed build (dist/) was made from
// other sources than web/ui's: a source changed without `make -C web/ui
// build`. web/ui/tools/check-build.js (make -C web/ui check-build) also
// rebuilds and compares the bytes.
func TestDistUpToDate(t *testing.T) {
	want, err := manifest("ui")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("dist", "SOURCES.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) == want {
		return
	}
	built := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		sum, name, _ := strings.Cut(line, "  ")
		built[name] = sum
	}
	var changed []string
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		sum, name, _ := strings.Cut(line, "  ")
		if built[name] != sum {
			changed = append(changed, name)
		}
		delete(built, name)
	}
	for name := range built {
		changed = append(changed, name+" (removed)")
	}
	sort.Strings(changed)
	t.Errorf("web/dist was built from other sources than web/ui holds (changed: %s): run `make -C web/ui build` and commit web/dist", strings.Join(changed, ", "))
}
