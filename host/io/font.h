// The plots' embedded bitmap font (host/io/font.c): 5x7 glyphs for printable ASCII.
#ifndef DIFFCL_IO_FONT_H
#define DIFFCL_IO_FONT_H

#define DCL_FONT_W 5 // glyph width in pixels; text advances DCL_FONT_W + 1 per character
#define DCL_FONT_H 7 // glyph height in pixels

// The DCL_FONT_H rows of character c's glyph, top first, bit 4 the leftmost column. Characters
// outside 32..126 get the glyph of '?'.
const unsigned char *dcl__font_glyph(int c);

#endif
