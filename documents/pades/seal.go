package pades

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// sealScale is pixels per PDF point in the rendered seal: enough to print
// crisply at 300 dpi.
const sealScale = 4

var (
	sealInk   = color.RGBA{0x1b, 0x2a, 0x6b, 0xff} // dark blue
	sealPaper = color.RGBA{0xf4, 0xf6, 0xfc, 0xff}
	// sealFonts parses the embedded Go fonts on first use, not at
	// program start.
	sealFonts  = sync.OnceValue(mustParseFonts)
	maxSealPix = 4000 // pixels per side; larger boxes are rendered at a lower scale
)

type fonts struct{ regular, bold *opentype.Font }

func mustParseFonts() fonts {
	r, err := opentype.Parse(goregular.TTF)
	if err != nil {
		panic(err) // the embedded Go fonts always parse
	}
	b, err := opentype.Parse(gobold.TTF)
	if err != nil {
		panic(err)
	}
	return fonts{r, b}
}

// renderSeal draws the visible seal — a framed box whose first line (the
// signer's name) is bold — as a PNG of width × height points.
func renderSeal(width, height float64, lines []string) ([]byte, error) {
	if width < 40 || height < 20 {
		return nil, fmt.Errorf("pades: seal box %.0f×%.0f pt is too small (at least 40×20)", width, height)
	}
	scale := float64(sealScale)
	for width*scale > float64(maxSealPix) || height*scale > float64(maxSealPix) {
		scale /= 2
	}
	w, h := int(width*scale), int(height*scale)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(sealPaper), image.Point{}, draw.Src)
	border := max(2, int(scale))
	for _, r := range []image.Rectangle{
		image.Rect(0, 0, w, border), image.Rect(0, h-border, w, h),
		image.Rect(0, 0, border, h), image.Rect(w-border, 0, w, h),
	} {
		draw.Draw(img, r, image.NewUniform(sealInk), image.Point{}, draw.Src)
	}

	// One font size for all lines: as large as the height allows, then
	// shrunk until the widest line fits.
	pad := 3 * scale
	size := (float64(h) - 2*pad) / (float64(len(lines)) * 1.25)
	size = min(size, 12*scale)
	for ; size >= 4; size *= 0.92 {
		if widest(lines, size) <= float64(w)-2*pad {
			break
		}
	}
	y := pad
	for i, line := range lines {
		f := sealFonts().regular
		if i == 0 {
			f = sealFonts().bold
		}
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
		if err != nil {
			return nil, err
		}
		y += size * 1.25
		d := font.Drawer{Dst: img, Src: image.NewUniform(sealInk), Face: face,
			Dot: fixed.Point26_6{X: fixed.I(int(pad)), Y: fixed.I(int(y - size*0.3))}}
		d.DrawString(line)
		face.Close()
	}
	var out bytes.Buffer
	if err := png.Encode(&out, img); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func widest(lines []string, size float64) float64 {
	var most float64
	for i, line := range lines {
		f := sealFonts().regular
		if i == 0 {
			f = sealFonts().bold
		}
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72})
		if err != nil {
			return 1e9
		}
		w := font.MeasureString(face, line)
		face.Close()
		most = max(most, float64(w)/64)
	}
	return most
}
