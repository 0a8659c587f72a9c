// Command tlogclient is an independent tlog-tiles client, used by tests/test_interop.py to check
// that a log served by amnesty-ledger is accepted by Go's reference transparency-log code
// (golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog), following the C2SP
// tlog-tiles, tlog-checkpoint and signed-note specifications to the letter.
//
// Usage: tlogclient BASE_URL VKEY
//
// It fetches /checkpoint, verifies the log's signature with note.Open, reads hash tiles through
// tlog.TileHashReader (which authenticates every tile against the checkpoint's root), checks
// that every entry in every bundle hashes to its leaf, and proves and checks a few inclusions.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogclient: "+format+"\n", args...)
	os.Exit(1)
}

func get(base, path, wantType string) []byte {
	resp, err := http.Get(base + "/" + path)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	if resp.StatusCode != 200 {
		fail("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != wantType {
		fail("GET %s: Content-Type %q, want %q", path, got, wantType)
	}
	return body
}

// tilePath encodes a tile the C2SP way: tile/<L>/<N>[.p/<W>], N in x-prefixed 3-digit groups.
func tilePath(level string, n int64, w int) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	p := "tile/" + level + "/" + s
	if w < 1<<height {
		p += ".p/" + strconv.Itoa(w)
	}
	return p
}

type tileReader struct{ base string }

func (r tileReader) Height() int { return height }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		out[i] = get(r.base, tilePath(strconv.Itoa(t.L), t.N, t.W), "application/octet-stream")
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	if len(os.Args) != 3 {
		fail("usage: tlogclient BASE_URL VKEY")
	}
	base, vkey := strings.TrimRight(os.Args[1], "/"), os.Args[2]
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	msg := get(base, "checkpoint", "text/plain; charset=utf-8")
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		fail("checkpoint: origin %q, want %q", lines[0], verifier.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint: bad size %q", lines[1])
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("checkpoint: bad root %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	tree := tlog.Tree{N: size, Hash: root}
	hr := tlog.TileHashReader(tree, tileReader{base})
	th, err := tlog.TreeHash(size, hr)
	if err != nil || th != root {
		fail("tree hash %v (err %v), checkpoint says %v", th, err, root)
	}
	// Every entry in every bundle hashes to its (authenticated) leaf hash.
	for b := int64(0); b*256 < size; b++ {
		w := int(size - b*256)
		if w > 256 {
			w = 256
		}
		bundle := get(base, tilePath("entries", b, w), "application/octet-stream")
		r := bytes.NewReader(bundle)
		for i := 0; i < w; i++ {
			var length uint16
			if err := binary.Read(r, binary.BigEndian, &length); err != nil {
				fail("bundle %d entry %d: %v", b, i, err)
			}
			data := make([]byte, length)
			if _, err := io.ReadFull(r, data); err != nil {
				fail("bundle %d entry %d: %v", b, i, err)
			}
			index := b*256 + int64(i)
			leaf, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
			if err != nil {
				fail("leaf %d: %v", index, err)
			}
			if tlog.RecordHash(data) != leaf[0] {
				fail("entry %d does not hash to its leaf", index)
			}
		}
		if r.Len() != 0 {
			fail("bundle %d: %d trailing bytes", b, r.Len())
		}
	}
	// Inclusion proofs computed by the Go code verify against the checkpoint.
	for _, index := range []int64{0, size / 2, size - 1} {
		proof, err := tlog.ProveRecord(size, index, hr)
		if err != nil {
			fail("prove %d: %v", index, err)
		}
		leaf, _ := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
		if err := tlog.CheckRecord(proof, size, root, index, leaf[0]); err != nil {
			fail("check %d: %v", index, err)
		}
	}
	fmt.Printf("OK %s size %d: checkpoint, tiles, %d entries and inclusion proofs verified by x/mod/sumdb\n", verifier.Name(), size, size)
}
