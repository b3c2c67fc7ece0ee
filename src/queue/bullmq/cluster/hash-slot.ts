/**
 * Redis Cluster's hash slot of a key: CRC16 (XMODEM) of its hash tag, modulo 16384, as
 * in Redis' `cluster.c`. Used to choose shard tags that spread over the slot space.
 */

/** Slots of a Redis Cluster. */
export const SLOTS = 16_384;

const TABLE = new Uint16Array(256);
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  TABLE[byte] = crc;
}

/** The slot of a hash tag (the text between the braces; ASCII, as queue names are). */
export function slotOfTag(tag: string): number {
  let crc = 0;
  for (let i = 0; i < tag.length; i++)
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ tag.charCodeAt(i)) & 0xff]!;
  return crc % SLOTS;
}
