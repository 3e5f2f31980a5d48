package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
)

// interlacedPNG builds a w×h grey Adam7-interlaced PNG by hand (Go's
// encoder writes none); image/png decoding it shows the pass sizes right.
func interlacedPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var raw bytes.Buffer
	for _, p := range [7]struct{ x0, y0, dx, dy int }{
		{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2},
	} {
		pw, ph := (w-p.x0+p.dx-1)/p.dx, (h-p.y0+p.dy-1)/p.dy
		for y := 0; pw > 0 && y < ph; y++ {
			raw.WriteByte(0) // filter: none
			raw.Write(bytes.Repeat([]byte{0x80}, pw))
		}
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw.Bytes())
	zw.Close()
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(kind string, data []byte) {
		binary.Write(&out, binary.BigEndian, uint32(len(data)))
		out.WriteString(kind)
		out.Write(data)
		binary.Write(&out, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(kind), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(w)), uint32(h))
	chunk("IHDR", append(ihdr, 8, 0, 0, 0, 1)) // 8-bit grey, interlaced
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	if _, err := png.Decode(bytes.NewReader(out.Bytes())); err != nil {
		t.Fatalf("the hand-made interlaced PNG does not decode: %v", err)
	}
	return out.Bytes()
}

func animatedGIF() []byte {
	palette := []color.Color{color.Black, color.White}
	frame := image.NewPaletted(image.Rect(0, 0, 3, 2), palette)
	var b bytes.Buffer
	gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{frame, frame}, Delay: []int{10, 10}})
	return b.Bytes()
}

// TestImagesMustBeWhole: whole images of each format pass; truncated ones,
// a header with something else after it, and a bare header do not.
func TestImagesMustBeWhole(t *testing.T) {
	t.Parallel()
	var colour bytes.Buffer
	jpeg.Encode(&colour, image.NewRGBA(image.Rect(0, 0, 33, 17)), &jpeg.Options{Quality: 90})
	good := map[string][]byte{
		"png": pngImage(40, 30), "interlaced png": interlacedPNG(t, 13, 11), "jpeg": jpegImage(),
		"colour jpeg": colour.Bytes(), "gif": gifImage(1, 1), "animated gif": animatedGIF(),
	}
	for name, data := range good {
		format := strings.Fields(name)[len(strings.Fields(name))-1]
		if err := checkImageWhole(format, data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	p := pngImage(40, 30)
	bad := map[string]struct {
		format string
		data   []byte
	}{
		"PNG header only":         {"png", p[:33]},
		"PNG header, then HTML":   {"png", append(append([]byte{}, p[:33]...), "<html><script>alert(1)</script>"...)},
		"PNG cut in its data":     {"png", p[:len(p)-20]},
		"PNG with a wrong CRC":    {"png", append(append(append([]byte{}, p[:29]...), p[29]^1), p[30:]...)},
		"PNG with more after it":  {"png", append(append([]byte{}, p...), "<html>"...)},
		"bare JPEG header":        {"jpeg", jpegImage()[:20]},
		"JPEG without its end":    {"jpeg", jpegImage()[:len(jpegImage())-2]},
		"JPEG, then HTML":         {"jpeg", append(jpegImage(), "<html>"...)},
		"GIF header only":         {"gif", gifImage(1, 1)[:13]},
		"GIF without its trailer": {"gif", gifImage(1, 1)[:len(gifImage(1, 1))-1]},
	}
	for name, tc := range bad {
		if err := checkImageWhole(tc.format, tc.data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A PNG whose pixels inflate to less than its header promises.
	short := image.NewGray(image.Rect(0, 0, 8, 8))
	var b bytes.Buffer
	png.Encode(&b, short)
	data := b.Bytes()
	binary.BigEndian.PutUint32(data[16+4:], 9) // IHDR height 8 -> 9, CRC fixed below
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	if err := checkImageWhole("png", data); err == nil {
		t.Error("a PNG with a row missing was accepted")
	}
}

// TestBrokenUploadsAreRefused: through the API, a PNG header followed by
// HTML is not an image.
func TestBrokenUploadsAreRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	access := e.login("alice").Access
	polyglot := append(pngImage(4, 4)[:33], "<html><script>alert(1)</script></html>"...)
	ct, body := multipartBody(map[string]string{"title": "x"}, "cover_image", "x.png", polyglot)
	want(t, e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+access), 400,
		`{"cover_image":["`+msgNotAnImage+`"]}`)
}
