// The IPC protocol library: every server and client imports from here.
export * from './address.js';
export * from './client.js';
export * from './codec.js';
export * from './reply.js';
export * from './server.js';
export { FrameReader, LineTooLongError } from './frame-reader.js';
