package main

// qrcode.go: a QR code of a short text, drawn as SVG, for the otpauth://
// URI an authenticator app scans at enrolment (mfa.go). Written here, from
// ISO/IEC 18004, so that the server needs no dependency and the page no
// script from elsewhere.
//
// Read it in the order a code is made: the text as bits (byte mode, the
// smallest version that holds it, error correction level M), the bits cut
// into blocks with Reed-Solomon error correction, the matrix with its
// fixed patterns, the data laid in its zigzag, then the mask that leaves
// the fewest confusing shapes, and the SVG.
//
// It knows QR codes, not what they say. CI reads one back with a real
// decoder (zbarimg) to hold it to the standard.

import (
	"errors"
	"fmt"
	"strings"
)

// Level M's tables, by version (1 to 40): how many error correction
// codewords each block has, and how many blocks the codewords are cut
// into (ISO/IEC 18004 table 9).
var (
	qrECCPerBlock = [41]int{0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
		26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28}
	qrBlocks = [41]int{0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
		17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49}
)

// qrLevelM is level M's two bits in the format information (it recovers
// about 15% of a damaged code).
const qrLevelM = 0b00

var errQRTooLong = errors.New("qrcode: the text does not fit in a QR code")

// qrCode is a square of modules, true for dark.
type qrCode struct {
	size     int
	dark     [][]bool
	function [][]bool // finder, timing, alignment, format and version modules: no data, no mask
}

// qrSVG draws text as a QR code in SVG: one path, a rectangle for each
// run of dark modules in a row, with the four-module quiet zone the
// standard asks for around it.
func qrSVG(text string) (string, error) {
	q, err := newQRCode([]byte(text))
	if err != nil {
		return "", err
	}
	const quiet = 4
	var path strings.Builder
	for y := range q.size {
		for x := 0; x < q.size; x++ {
			run := 0
			for x+run < q.size && q.dark[y][x+run] {
				run++
			}
			if run > 0 {
				fmt.Fprintf(&path, "M%d,%dh%dv1h-%dz", x+quiet, y+quiet, run, run)
				x += run
			}
		}
	}
	n := q.size + 2*quiet
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`+
		`<rect width="%d" height="%d" fill="#fff"/><path d="%s" fill="#000"/></svg>`, n, n, n, n, path.String()), nil
}

// newQRCode encodes data in byte mode at level M, in the smallest version
// that holds it.
func newQRCode(data []byte) (*qrCode, error) {
	version := 0
	for v := 1; v <= 40; v++ {
		if 4+qrCountBits(v)+8*len(data) <= 8*qrDataCodewords(v) {
			version = v
			break
		}
	}
	if version == 0 {
		return nil, errQRTooLong
	}
	q := &qrCode{size: 17 + 4*version}
	q.dark, q.function = qrGrid(q.size), qrGrid(q.size)
	q.drawFunctionPatterns(version)
	q.drawData(qrInterleave(version, qrDataBits(version, data)))
	q.applyBestMask(version)
	return q, nil
}

func qrGrid(size int) [][]bool {
	grid := make([][]bool, size)
	for i := range grid {
		grid[i] = make([]bool, size)
	}
	return grid
}

// ---- the text as codewords ----

// qrCountBits is the width of byte mode's character count.
func qrCountBits(version int) int {
	if version <= 9 {
		return 8
	}
	return 16
}

// qrRawModules is how many modules of a version hold data or error
// correction: the whole square less its fixed patterns.
func qrRawModules(version int) int {
	n := (16*version+128)*version + 64
	if version >= 2 {
		align := version/7 + 2
		n -= (25*align-10)*align - 55
		if version >= 7 {
			n -= 36 // the two version blocks
		}
	}
	return n
}

func qrDataCodewords(version int) int {
	return qrRawModules(version)/8 - qrECCPerBlock[version]*qrBlocks[version]
}

// qrDataBits is the data codewords: mode 0100 (bytes), the count, the
// bytes, a terminator of up to four zeros, zeros to a byte, then the pad
// bytes 0xEC and 0x11 in turn to fill the version.
func qrDataBits(version int, data []byte) []byte {
	capacity := qrDataCodewords(version)
	var bits []bool
	put := func(value, width int) {
		for i := width - 1; i >= 0; i-- {
			bits = append(bits, value>>i&1 == 1)
		}
	}
	put(0b0100, 4)
	put(len(data), qrCountBits(version))
	for _, b := range data {
		put(int(b), 8)
	}
	put(0, min(4, 8*capacity-len(bits)))
	put(0, (8-len(bits)%8)%8)
	codewords := make([]byte, 0, capacity)
	for i := 0; i < len(bits); i += 8 {
		var b byte
		for _, bit := range bits[i : i+8] {
			b <<= 1
			if bit {
				b |= 1
			}
		}
		codewords = append(codewords, b)
	}
	for pad := byte(0xEC); len(codewords) < capacity; pad ^= 0xEC ^ 0x11 {
		codewords = append(codewords, pad)
	}
	return codewords
}

// qrInterleave cuts the data codewords into the version's blocks (the
// first ones a codeword shorter when they do not divide evenly), adds
// each block's error correction, and interleaves them: the first codeword
// of every block, then the second, and so on; then the error correction
// the same way.
func qrInterleave(version int, data []byte) []byte {
	blocks, ecc := qrBlocks[version], qrECCPerBlock[version]
	raw := qrRawModules(version) / 8
	short := blocks - raw%blocks // blocks of shortLen codewords; the rest have one more data codeword
	shortLen := raw / blocks
	divisor := rsDivisor(ecc)
	var dataBlocks, eccBlocks [][]byte
	for i, at := 0, 0; i < blocks; i++ {
		n := shortLen - ecc
		if i >= short {
			n++
		}
		dataBlocks = append(dataBlocks, data[at:at+n])
		eccBlocks = append(eccBlocks, rsRemainder(data[at:at+n], divisor))
		at += n
	}
	out := make([]byte, 0, raw)
	for i := range shortLen - ecc + 1 {
		for _, b := range dataBlocks {
			if i < len(b) {
				out = append(out, b[i])
			}
		}
	}
	for i := range ecc {
		for _, b := range eccBlocks {
			out = append(out, b[i])
		}
	}
	return out
}

// rsDivisor is the Reed-Solomon generator polynomial of degree n over
// GF(256) (x - 2^0)(x - 2^1)...(x - 2^(n-1)), its leading 1 left out.
func rsDivisor(n int) []byte {
	poly := make([]byte, n)
	poly[n-1] = 1
	root := byte(1)
	for range n {
		for j := range poly {
			poly[j] = gfMul(poly[j], root)
			if j+1 < n {
				poly[j] ^= poly[j+1]
			}
		}
		root = gfMul(root, 2)
	}
	return poly
}

// rsRemainder is the error correction of data: the remainder of data
// (times x^n) divided by the divisor.
func rsRemainder(data, divisor []byte) []byte {
	rem := make([]byte, len(divisor))
	for _, b := range data {
		factor := b ^ rem[0]
		copy(rem, rem[1:])
		rem[len(rem)-1] = 0
		for i, c := range divisor {
			rem[i] ^= gfMul(c, factor)
		}
	}
	return rem
}

// gfMul multiplies in GF(256) modulo x^8 + x^4 + x^3 + x^2 + 1 (0x11D).
func gfMul(x, y byte) byte {
	var z byte
	for i := 7; i >= 0; i-- {
		carry := z >> 7
		z = z<<1 ^ carry*0x1D
		z ^= (y >> i & 1) * x
	}
	return z
}

// ---- the matrix ----

// set draws a fixed module.
func (q *qrCode) set(x, y int, dark bool) {
	q.dark[y][x], q.function[y][x] = dark, true
}

// drawFunctionPatterns draws what every code of a version has: the
// timing lines, the three finders with their light borders, the alignment
// squares, the version blocks; and reserves the format modules (drawn
// with the mask).
func (q *qrCode) drawFunctionPatterns(version int) {
	for i := range q.size {
		q.set(6, i, i%2 == 0)
		q.set(i, 6, i%2 == 0)
	}
	for _, c := range [][2]int{{3, 3}, {q.size - 4, 3}, {3, q.size - 4}} {
		for dy := -4; dy <= 4; dy++ {
			for dx := -4; dx <= 4; dx++ {
				x, y := c[0]+dx, c[1]+dy
				if x >= 0 && x < q.size && y >= 0 && y < q.size {
					ring := max(abs(dx), abs(dy))
					q.set(x, y, ring != 2 && ring != 4)
				}
			}
		}
	}
	centers := qrAlignmentCenters(version, q.size)
	for i, cy := range centers {
		for j, cx := range centers {
			last := len(centers) - 1
			if i == 0 && j == 0 || i == 0 && j == last || i == last && j == 0 {
				continue // a finder is there
			}
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					q.set(cx+dx, cy+dy, max(abs(dx), abs(dy)) != 1)
				}
			}
		}
	}
	q.drawFormat(0) // reserves the modules; applyBestMask draws the real bits
	if version >= 7 {
		bits := version<<12 | bchRemainder(version, 0x1F25, 12)
		for i := range 18 {
			a, b := q.size-11+i%3, i/3
			q.set(a, b, bits>>i&1 == 1)
			q.set(b, a, bits>>i&1 == 1)
		}
	}
}

// qrAlignmentCenters are the rows (and columns) of a version's alignment
// squares: 6, then evenly spaced up to size-7.
func qrAlignmentCenters(version, size int) []int {
	if version == 1 {
		return nil
	}
	n := version/7 + 2
	step := (version*4 + n*2 + 1) / (n*2 - 2) * 2
	if version == 32 {
		step = 26
	}
	centers := make([]int, n)
	centers[0] = 6
	for i := n - 1; i >= 1; i-- {
		centers[i] = size - 7 - (n-1-i)*step
	}
	return centers
}

// drawFormat draws the level and the mask, error-corrected (BCH 15,5) and
// masked with 0x5412, twice: around the top-left finder, and split between
// the other two. The module beside the bottom-left finder is always dark.
func (q *qrCode) drawFormat(mask int) {
	data := qrLevelM<<3 | mask
	bits := (data<<10 | bchRemainder(data, 0x537, 10)) ^ 0x5412
	bit := func(i int) bool { return bits>>i&1 == 1 }
	for i := range 6 {
		q.set(8, i, bit(i))
	}
	q.set(8, 7, bit(6))
	q.set(8, 8, bit(7))
	q.set(7, 8, bit(8))
	for i := 9; i < 15; i++ {
		q.set(14-i, 8, bit(i))
	}
	for i := range 8 {
		q.set(q.size-1-i, 8, bit(i))
	}
	for i := 8; i < 15; i++ {
		q.set(8, q.size-15+i, bit(i))
	}
	q.set(8, q.size-8, true)
}

// bchRemainder is the remainder of value (times x^width) divided by the
// generator poly, over GF(2).
func bchRemainder(value, poly, width int) int {
	rem := value
	for range width {
		rem = rem<<1 ^ (rem>>(width-1))*poly
	}
	return rem & (1<<width - 1)
}

// drawData lays the codewords' bits, most significant first, in two-module
// columns from the bottom right, up then down, around the fixed modules
// (column 6, the timing line, is skipped whole). Modules left over stay
// light.
func (q *qrCode) drawData(codewords []byte) {
	i := 0
	for right := q.size - 1; right >= 1; right -= 2 {
		if right == 6 {
			right = 5
		}
		upward := (right+1)&2 == 0
		for vert := range q.size {
			y := vert
			if upward {
				y = q.size - 1 - vert
			}
			for _, x := range []int{right, right - 1} {
				if !q.function[y][x] && i < 8*len(codewords) {
					q.dark[y][x] = codewords[i/8]>>(7-i%8)&1 == 1
					i++
				}
			}
		}
	}
}

// ---- the mask ----

// qrMasks are the eight patterns a code's data may be flipped by.
var qrMasks = [8]func(x, y int) bool{
	func(x, y int) bool { return (x+y)%2 == 0 },
	func(x, y int) bool { return y%2 == 0 },
	func(x, y int) bool { return x%3 == 0 },
	func(x, y int) bool { return (x+y)%3 == 0 },
	func(x, y int) bool { return (x/3+y/2)%2 == 0 },
	func(x, y int) bool { return x*y%2+x*y%3 == 0 },
	func(x, y int) bool { return (x*y%2+x*y%3)%2 == 0 },
	func(x, y int) bool { return ((x+y)%2+x*y%3)%2 == 0 },
}

// applyBestMask tries each mask and keeps the one whose code scores the
// fewest penalty points: long runs, blocks, finder look-alikes and an
// uneven share of dark modules all make a code harder to read.
func (q *qrCode) applyBestMask(version int) {
	best, bestScore := 0, -1
	for m := range qrMasks {
		q.flip(m)
		q.drawFormat(m)
		if score := q.penalty(); bestScore < 0 || score < bestScore {
			best, bestScore = m, score
		}
		q.flip(m) // flipping again undoes it
	}
	q.flip(best)
	q.drawFormat(best)
}

func (q *qrCode) flip(mask int) {
	for y := range q.size {
		for x := range q.size {
			if !q.function[y][x] && qrMasks[mask](x, y) {
				q.dark[y][x] = !q.dark[y][x]
			}
		}
	}
}

// penalty scores the code by the standard's four rules.
func (q *qrCode) penalty() int {
	score, dark := 0, 0
	at := func(x, y int, across bool) bool {
		if across {
			return q.dark[y][x]
		}
		return q.dark[x][y]
	}
	for _, across := range []bool{true, false} {
		for line := range q.size {
			run := 0
			for i := range q.size {
				if i > 0 && at(i, line, across) == at(i-1, line, across) {
					run++
				} else {
					run = 1
				}
				if run == 5 {
					score += 3 // rule 1: five alike in a row, and one more point each after
				} else if run > 5 {
					score++
				}
				if i >= 10 && q.finderLike(func(k int) bool { return at(i-10+k, line, across) }) {
					score += 40 // rule 3
				}
			}
		}
	}
	for y := range q.size {
		for x := range q.size {
			if q.dark[y][x] {
				dark++
			}
			if x > 0 && y > 0 && q.dark[y][x] == q.dark[y-1][x] && q.dark[y][x] == q.dark[y][x-1] &&
				q.dark[y][x] == q.dark[y-1][x-1] {
				score += 3 // rule 2: a 2×2 block
			}
		}
	}
	total := q.size * q.size
	return score + 10*((abs(dark*20-total*10)+total-1)/total-1) // rule 4: each 5% from half
}

// finderLike reports whether 11 modules read dark-light-dark³-light-dark
// with four light ones before or after: rule 3's shape.
func (q *qrCode) finderLike(m func(k int) bool) bool {
	const a, b = "00001011101", "10111010000"
	matches := func(p string) bool {
		for k := range 11 {
			if m(k) != (p[k] == '1') {
				return false
			}
		}
		return true
	}
	return matches(a) || matches(b)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
