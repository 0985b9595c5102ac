Require Import List.
Import ListNotations.

(** List reversal, written out. *)
Fixpoint reverse (l : list nat) : list nat :=
  match l with
  | [] => []
  | x :: t => reverse t ++ [x]
  end.

(** Reversing twice gives back the list. *)
Theorem reverse_involutive : forall l : list nat, reverse (reverse l) = l.
