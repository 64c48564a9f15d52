//! Text for the bitmap figures, drawn glyph by glyph with each glyph's left side bearing:
//! plotters 0.3.7's ab_glyph text places every glyph at its advance without its bearing,
//! which scatters letters ("token s D"). This backend wrapper draws text itself and passes
//! everything else through.

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// A backend whose text is laid out with bearings and kerning from `font`.
pub struct GlyphFix<DB> {
    inner: DB,
    font: FontRef<'static>,
}

impl<DB> GlyphFix<DB> {
    /// Wraps `inner`; `font` is a TrueType file.
    pub fn new(inner: DB, font: &'static [u8]) -> Option<Self> {
        Some(GlyphFix {
            inner,
            font: FontRef::try_from_slice(font).ok()?,
        })
    }
}

/// What a drawing call of the wrapped backend `DB` returns.
type Drawn<DB> = Result<(), DrawingErrorKind<<DB as DrawingBackend>::ErrorType>>;
/// A pixel position.
type Coord = BackendCoord;

/// The calls that take a list of points, passed to the wrapped backend unchanged.
macro_rules! points_through {
    ($($name:ident),*) => {$(
        fn $name<S: BackendStyle, P: IntoIterator<Item = Coord>>(&mut self, p: P, s: &S) -> Drawn<DB> {
            self.inner.$name(p, s)
        }
    )*};
}

impl<DB: DrawingBackend> DrawingBackend for GlyphFix<DB> {
    type ErrorType = DB::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Drawn<DB> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Drawn<DB> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, p: Coord, c: BackendColor) -> Drawn<DB> {
        self.inner.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(&mut self, a: Coord, b: Coord, s: &S) -> Drawn<DB> {
        self.inner.draw_line(a, b, s)
    }
    fn draw_rect<S: BackendStyle>(&mut self, a: Coord, b: Coord, s: &S, fill: bool) -> Drawn<DB> {
        self.inner.draw_rect(a, b, s, fill)
    }
    fn draw_circle<S: BackendStyle>(&mut self, c: Coord, r: u32, s: &S, fill: bool) -> Drawn<DB> {
        self.inner.draw_circle(c, r, s, fill)
    }
    points_through!(draw_path, fill_polygon);
    fn blit_bitmap(&mut self, pos: Coord, wh: (u32, u32), src: &[u8]) -> Drawn<DB> {
        self.inner.blit_bitmap(pos, wh, src)
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: Coord) -> Drawn<DB> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        // The same box plotters lays the text out with, so anchors and label areas agree.
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.inner.get_size();
        let size = style.size() as f32;
        let font = self.font.as_scaled(size);
        let mut x_adv = 0f32;
        let mut prev = None;
        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        for ch in text.chars() {
            let id = font.glyph_id(ch);
            if let Some(p) = prev {
                x_adv += font.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(size, ab_glyph::point(x_adv, 0.0));
            if let Some(q) = font.outline_glyph(glyph) {
                let r = q.px_bounds();
                // Vertical placement as plotters does it (half the size below the top),
                // horizontal from the glyph's own bounds: bearing included.
                let (ox, oy) = (r.min.x.round() as i32, (size / 2.0 + r.min.y) as i32);
                q.draw(|x, y, c| pixels.push((ox + x as i32, oy + y as i32, c)));
            }
            x_adv += font.h_advance(id);
        }
        for (x, y, c) in pixels {
            if c <= 0.0 {
                continue;
            }
            let (x, y) = trans.transform(x + dx - min_x, y + dy - min_y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                self.inner.draw_pixel(
                    (x, y),
                    BackendColor {
                        alpha: color.alpha * f64::from(c.min(1.0)),
                        rgb: color.rgb,
                    },
                )?;
            }
        }
        Ok(())
    }
}
