// Messages between the bcrypt worker and the thread that asks it, one type for each direction.

export interface BcryptRequest {
  id: number;
  password: string;
  hash: string;
}

export type BcryptAnswer = { id: number; ok: boolean } | { id: number; error: string };
