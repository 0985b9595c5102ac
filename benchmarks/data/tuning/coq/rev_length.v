Require Import List.
Import ListNotations.

(** Reversing a list keeps its length. *)
Theorem rev_keeps_length : forall l : list nat, length (rev l) = length l.
