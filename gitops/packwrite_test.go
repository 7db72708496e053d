package gitops

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// TestAppendDelta checks the deltas packChain writes with go-git's own delta applier (an
// implementation not ours): edits at the start, middle and end, growth and shrinkage,
// an empty target (packChain never uses an empty base: go-git refuses one), and copies past 64 KiB and offsets past 16 MiB.
func TestAppendDelta(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	big := random(17 << 20)
	cases := map[string][2][]byte{
		"middle":      {[]byte("entries: a b c d"), []byte("entries: a B c d")},
		"start":       {[]byte("xbcdef"), []byte("abcdef")},
		"end":         {[]byte("abcdef"), []byte("abcdeF and more")},
		"shrink":      {[]byte("abc-long-middle-def"), []byte("abcdef")},
		"same":        {[]byte("same"), []byte("same")},
		"to empty":    {[]byte("old"), nil},
		"long insert": {[]byte("ab"), append(append([]byte("a"), random(1000)...), 'b')},
		"big copies":  {big, append(append(append([]byte(nil), big[:9<<20]...), "edit"...), big[9<<20+3:]...)},
	}
	for i := range 50 {
		base := random(1 + rng.IntN(3000))
		target := append([]byte(nil), base...)
		if len(target) > 0 {
			at := rng.IntN(len(target))
			target = append(target[:at], append(random(rng.IntN(40)), target[min(len(target), at+rng.IntN(40)):]...)...)
		}
		cases["random "+string(rune('a'+i%26))+string(rune('0'+i/26))] = [2][]byte{base, target}
	}
	for name, c := range cases {
		d := appendDelta(nil, c[0], c[1])
		got, err := packfile.PatchDelta(c[0], d)
		if err != nil {
			t.Errorf("%s: go-git cannot apply the delta: %v", name, err)
			continue
		}
		if !bytes.Equal(got, c[1]) {
			t.Errorf("%s: the delta makes %d bytes, want the %d of the target", name, len(got), len(c[1]))
		}
	}
}
