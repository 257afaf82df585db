/* What gcc may call at -O2 in a freestanding build (see runtime.h). */
void *memset(void *dst, int c, unsigned n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
void *memcpy(void *dst, const void *src, unsigned n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}
