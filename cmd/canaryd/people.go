package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// readPeople reads api.tokensFile: one person a line, the SHA-256 of their token in hex and
// their name (`echo -n "$TOKEN" | sha256sum` prints the hash), # starts a comment:
//
//	9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 alice@example.com
//
// No path returns nil. Problems are reported as FILE:LINE: why; a hash is never printed.
func readPeople(path string) (map[[32]byte]string, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api tokens file: %w", err)
	}
	people := map[[32]byte]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		hash, name, _ := strings.Cut(strings.TrimSpace(line), " ")
		name = strings.TrimSpace(name)
		if hash == "" {
			continue
		}
		var key [32]byte
		b, err := hex.DecodeString(strings.TrimPrefix(hash, "sha256:"))
		if err != nil || len(b) != len(key) {
			return nil, fmt.Errorf("%s:%d: want the SHA-256 of a token in hex (64 characters) and a name", path, n)
		}
		if name == "" {
			return nil, fmt.Errorf("%s:%d: the token has no name after its hash", path, n)
		}
		copy(key[:], b)
		if other, dup := people[key]; dup {
			return nil, fmt.Errorf("%s:%d: the same token is already %s's", path, n, other)
		}
		people[key] = name
	}
	return people, sc.Err()
}
