package main

// imagecheck.go: whether an uploaded PNG, JPEG or GIF is whole.
//
// image.DecodeConfig reads only an image's header, so a PNG that stops after
// its header, or a header followed by HTML, passes it. Decoding the whole
// image would catch those, but costs width × height × 4 bytes of memory: up
// to 400 MB at the contract's 10,000 pixels a side. So each file is walked
// instead, structure by structure, in constant memory: every PNG chunk with
// its CRC and the compressed pixels inflated (to nowhere) to exactly the
// size the header promises; every JPEG segment up to the end-of-image
// marker; every GIF block up to the trailer. Nothing may follow the end.
//
// It knows the three file formats, not HTTP or storage.

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

var errBrokenImage = errors.New("the image is truncated or corrupt")

// checkImageWhole checks data, already recognised by image.DecodeConfig as
// format ("png", "jpeg" or "gif").
func checkImageWhole(format string, data []byte) error {
	switch format {
	case "png":
		return checkPNG(data)
	case "jpeg":
		return checkJPEG(data)
	case "gif":
		return checkGIF(data)
	}
	return errBrokenImage
}

// checkPNG walks the chunks: IHDR first, each CRC right, IEND last with
// nothing after it, and the IDAT stream inflating to exactly the bytes of
// the rows IHDR describes (with Adam7 interlacing, of its seven passes).
func checkPNG(data []byte) error {
	const signature = "\x89PNG\r\n\x1a\n"
	if !bytes.HasPrefix(data, []byte(signature)) {
		return errBrokenImage
	}
	rest := data[len(signature):]
	var idat [][]byte
	var rowBytes func(width int64) int64
	var width, height int64
	interlaced := false
	for first := true; ; first = false {
		if len(rest) < 12 {
			return errBrokenImage
		}
		length := int64(binary.BigEndian.Uint32(rest))
		if length > int64(len(rest))-12 {
			return errBrokenImage
		}
		kind, body := string(rest[4:8]), rest[8:8+length]
		if crc32.ChecksumIEEE(rest[4:8+length]) != binary.BigEndian.Uint32(rest[8+length:]) {
			return errBrokenImage
		}
		rest = rest[12+length:]
		switch {
		case first && kind != "IHDR", !first && kind == "IHDR":
			return errBrokenImage
		case kind == "IHDR":
			if length != 13 {
				return errBrokenImage
			}
			width, height = int64(binary.BigEndian.Uint32(body)), int64(binary.BigEndian.Uint32(body[4:]))
			channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[body[9]]
			bits := int64(body[8]) * channels
			if bits == 0 {
				return errBrokenImage
			}
			rowBytes = func(w int64) int64 { return 1 + (w*bits+7)/8 } // the filter byte, then the pixels
			interlaced = body[12] == 1
		case kind == "IDAT":
			idat = append(idat, body)
		case kind == "IEND":
			if len(rest) != 0 || len(idat) == 0 {
				return errBrokenImage
			}
			return inflatesTo(idat, pngDataSize(width, height, interlaced, rowBytes))
		}
	}
}

// pngDataSize is the size of a PNG's filtered rows before compression.
func pngDataSize(width, height int64, interlaced bool, rowBytes func(int64) int64) int64 {
	if !interlaced {
		return height * rowBytes(width)
	}
	var size int64
	for _, p := range [7]struct{ x0, y0, dx, dy int64 }{
		{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2},
	} {
		w, h := (width-p.x0+p.dx-1)/p.dx, (height-p.y0+p.dy-1)/p.dy
		if w > 0 && h > 0 {
			size += h * rowBytes(w)
		}
	}
	return size
}

// inflatesTo reports whether the zlib stream split over parts inflates to
// exactly want bytes and ends there.
func inflatesTo(parts [][]byte, want int64) error {
	readers := make([]io.Reader, len(parts))
	for i, p := range parts {
		readers[i] = bytes.NewReader(p)
	}
	z, err := zlib.NewReader(io.MultiReader(readers...))
	if err != nil {
		return errBrokenImage
	}
	n, err := io.Copy(io.Discard, io.LimitReader(z, want+1))
	if err != nil || n != want {
		return errBrokenImage
	}
	return nil
}

// checkJPEG walks the segments from SOI: each marker's length in bounds, a
// frame header and a scan before the end-of-image marker, which ends the
// file.
func checkJPEG(data []byte) error {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return errBrokenImage
	}
	i, frame, scan := 2, false, false
	for {
		for i < len(data) && data[i] == 0xFF && i+1 < len(data) && data[i+1] == 0xFF {
			i++ // fill bytes
		}
		if i+1 >= len(data) || data[i] != 0xFF {
			return errBrokenImage
		}
		marker := data[i+1]
		i += 2
		switch {
		case marker == 0xD9: // EOI
			if !frame || !scan || i != len(data) {
				return errBrokenImage
			}
			return nil
		case marker >= 0xD0 && marker <= 0xD7, marker == 0x01: // no length
			continue
		}
		if i+2 > len(data) {
			return errBrokenImage
		}
		length := int(binary.BigEndian.Uint16(data[i:]))
		if length < 2 || i+length > len(data) {
			return errBrokenImage
		}
		i += length
		switch {
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			frame = true
		case marker == 0xDA: // SOS: entropy-coded data up to the next marker
			scan = true
			for i+1 < len(data) && !(data[i] == 0xFF && data[i+1] != 0x00 && (data[i+1] < 0xD0 || data[i+1] > 0xD7)) {
				i++
			}
		}
	}
}

// checkGIF walks the blocks after the header and the colour table: each
// extension's and image's sub-blocks to their terminator, at least one
// image, and the trailer last.
func checkGIF(data []byte) error {
	if len(data) < 13 || !bytes.HasPrefix(data, []byte("GIF8")) {
		return errBrokenImage
	}
	i := 13
	if flags := data[10]; flags&0x80 != 0 {
		i += 3 << (flags&7 + 1)
	}
	images := 0
	subBlocks := func() bool { // from i, up to and past the zero-length block
		for i < len(data) {
			n := int(data[i])
			i += 1 + n
			if n == 0 {
				return i <= len(data)
			}
		}
		return false
	}
	for i < len(data) {
		switch data[i] {
		case 0x3B: // trailer
			if images == 0 || i+1 != len(data) {
				return errBrokenImage
			}
			return nil
		case 0x21: // extension: label, then sub-blocks
			i += 2
			if !subBlocks() {
				return errBrokenImage
			}
		case 0x2C: // image descriptor, local colour table, LZW code size, data
			if i+10 > len(data) {
				return errBrokenImage
			}
			if flags := data[i+9]; flags&0x80 != 0 {
				i += 3 << (flags&7 + 1)
			}
			i += 11
			if !subBlocks() {
				return errBrokenImage
			}
			images++
		default:
			return errBrokenImage
		}
	}
	return errBrokenImage
}
