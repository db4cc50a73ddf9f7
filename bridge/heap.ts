/**
 * Returning the C heap's free pages to the system after big transient allocations (native/heap.c).
 */
import { loadAddon } from './native';

/** Trims the heap; false when nothing was returned or the addon is missing (glibc only). */
export function trimHeap(): boolean {
  return loadAddon<{ trim(): boolean }>('vtpu_heap')?.trim() ?? false;
}
